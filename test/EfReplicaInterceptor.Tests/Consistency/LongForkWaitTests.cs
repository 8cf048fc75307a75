using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// The Long Fork wait without a server: which round trips a move from a standby to the primary costs, which transactions it
/// waits for (those the scope's standby shows committed, or with commit timestamps those the primary has commit records of),
/// that it ends when the primary shows them or when the read deadline passes, and that a failure never fails the read.
/// </summary>
public sealed class LongForkWaitTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(3);
    private FakeTimeProvider _time = null!;
    private FakeLongForkRoundTrips _trips = null!;
    private NpgsqlDataSource _dataSource = null!;
    private EfReplicaMetrics _metrics = null!;
    private ReplicaEndpoint _standby = null!;
    private LongForkWait _wait = null!;

    [SetUp]
    public void Create()
    {
        _time = new FakeTimeProvider();
        _trips = new FakeLongForkRoundTrips();
        _dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        _metrics = new EfReplicaMetrics();
        _standby = new ReplicaEndpoint(0, "standby", _dataSource, _time, TimeSpan.FromSeconds(1));
        _wait = new LongForkWait("c", _trips, Deadline, _metrics, NullLogger.Instance, _time);
    }

    [TearDown]
    public void Dispose()
    {
        _metrics.Dispose();
        _dataSource.Dispose();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_scope_that_read_on_no_standby_since_its_last_check_costs_nothing(bool async)
    {
        var primaryOnly = new ReadHistory();
        primaryOnly.StartedOnPrimary();

        var check = await _wait.BeforePrimaryReadAsync(primaryOnly, null, async, CancellationToken.None);

        Assert.That(check, Is.EqualTo(new LongForkCheck(LongForkOutcome.NotNeeded, 0, TimeSpan.Zero)));
        Assert.That(_trips.Calls, Is.Empty);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Without_commit_timestamps_the_standby_is_asked_about_the_primary_s_snapshot_and_nothing_committed_there_means_no_wait(bool async)
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([7, 9], Xmax: 12, Committed: null);
        _trips.OnStandby = [];

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async, CancellationToken.None);

        Assert.That(check, Is.EqualTo(new LongForkCheck(LongForkOutcome.NothingToWaitFor, 2, TimeSpan.Zero, LongForkBasis.Standby)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby standby [7, 9] from 12" }));
        Assert.That(scope.StandbyReadSinceLongForkCheck, Is.Null, "checked: the next move to the primary costs nothing");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task With_commit_timestamps_and_nothing_committing_one_primary_round_trip_is_the_whole_check(bool async)
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([7, 9], Xmax: 12, Committed: []);

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async, CancellationToken.None);

        Assert.That(check, Is.EqualTo(new LongForkCheck(LongForkOutcome.NothingToWaitFor, 1, TimeSpan.Zero, LongForkBasis.CommitTimestamps)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary" }));
    }

    [Test]
    public async Task It_waits_until_the_primary_shows_what_the_standby_showed_committed()
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([7, 9], Xmax: 12, Committed: null);
        _trips.OnStandby = [9, 12];
        _trips.Invisible.Enqueue(2);
        _trips.Invisible.Enqueue(1);
        _trips.Invisible.Enqueue(0);

        var check = await DriveAsync(_wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None));

        Assert.That(check.Outcome, Is.EqualTo(LongForkOutcome.Waited));
        Assert.That(check.RoundTrips, Is.EqualTo(5), "primary, standby, three polls");
        Assert.That(check.Waited, Is.GreaterThan(TimeSpan.Zero));
        Assert.That(_trips.Calls[2..], Is.All.EqualTo("invisible [9, 12]"), "only what the standby showed committed is waited for");
    }

    [Test]
    public async Task With_commit_timestamps_it_narrows_the_primary_s_committing_transactions_by_the_standby_s_view()
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([7, 9], Xmax: 12, Committed: [9, 13]);
        _trips.OnStandby = [9];
        _trips.Invisible.Enqueue(0);

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None);

        Assert.That(check.Outcome, Is.EqualTo(LongForkOutcome.Waited));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby standby [7, 9] from 12", "invisible [9]" }));
    }

    [Test]
    public async Task The_wait_ends_at_the_read_deadline_and_the_read_goes_on()
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null);
        _trips.OnStandby = [7];
        _trips.AlwaysInvisible = 1;

        var check = await DriveAsync(_wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None));

        Assert.That(check.Outcome, Is.EqualTo(LongForkOutcome.DeadlineExpired));
        Assert.That(check.Waited, Is.GreaterThanOrEqualTo(Deadline));
        Assert.That(check.Waited, Is.LessThan(Deadline + TimeSpan.FromMilliseconds(100)), "the last pause is cut at the deadline");
    }

    [Test]
    public async Task A_standby_that_left_the_cluster_cannot_be_asked_so_without_commit_timestamps_every_transaction_the_primary_s_snapshot_does_not_show_is_waited_for()
    {
        var scope = ReadOnStandby();
        await _standby.Server.Usage.CloseAsync();
        _trips.Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null);
        _trips.Running = [8, 11];
        _trips.Invisible.Enqueue(0);

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None);

        Assert.That((check.Outcome, check.Basis, check.RoundTrips), Is.EqualTo((LongForkOutcome.Waited, LongForkBasis.Unfiltered, 3)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 8", "invisible [7, 8, 11]" }));
        Assert.That(scope.StandbyReadSinceLongForkCheck, Is.Null, "checked");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_standby_paused_after_a_failed_read_is_not_asked_the_unfiltered_wait_runs_instead(bool async)
    {
        var scope = ReadOnStandby();
        _standby.Availability.ReportFailure(); // a read just failed there (it may hang: asking it could take the read deadline)
        _trips.Primary = new PrimaryTransactions([7, 9], Xmax: 12, Committed: null);
        _trips.Running = [12];
        _trips.Invisible.Enqueue(0);

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async, CancellationToken.None);

        Assert.That((check.Outcome, check.Basis), Is.EqualTo((LongForkOutcome.Waited, LongForkBasis.Unfiltered)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 12", "invisible [7, 9, 12]" }), "the standby was not asked");
    }

    [Test]
    public async Task The_unfiltered_wait_ends_at_the_read_deadline_too()
    {
        var scope = ReadOnStandby();
        _standby.Availability.ReportFailure();
        _trips.Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null);
        _trips.AlwaysInvisible = 1; // a long transaction open on the primary

        var check = await DriveAsync(_wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None));

        Assert.That((check.Outcome, check.Basis), Is.EqualTo((LongForkOutcome.DeadlineExpired, LongForkBasis.Unfiltered)));
        Assert.That(check.Waited, Is.GreaterThanOrEqualTo(Deadline).And.LessThan(Deadline + TimeSpan.FromMilliseconds(100)));
    }

    [Test]
    public async Task With_commit_timestamps_a_standby_that_left_is_not_needed_every_committing_transaction_is_waited_for()
    {
        var scope = ReadOnStandby();
        await _standby.Server.Usage.CloseAsync();
        _trips.Primary = new PrimaryTransactions([7], Xmax: 8, Committed: [7]);
        _trips.Invisible.Enqueue(0);

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None);

        Assert.That(check.Outcome, Is.EqualTo(LongForkOutcome.Waited));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "invisible [7]" }));
    }

    [Test]
    public async Task With_commit_timestamps_a_standby_that_does_not_answer_leaves_every_committing_transaction_to_wait_for()
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([7, 9], Xmax: 12, Committed: [9]);
        _trips.StandbyFailure = new NpgsqlException("connection refused");
        _trips.Invisible.Enqueue(0);

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None);

        Assert.That(check.Outcome, Is.EqualTo(LongForkOutcome.Waited));
        Assert.That(_trips.Calls[^1], Is.EqualTo("invisible [9]"));
    }

    [Test]
    public async Task Without_commit_timestamps_a_standby_that_does_not_answer_leaves_the_unfiltered_wait()
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([7, 9], Xmax: 12, Committed: null);
        _trips.StandbyFailure = new NpgsqlException("connection refused");
        _trips.Invisible.Enqueue(0);

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None);

        Assert.That((check.Outcome, check.Basis), Is.EqualTo((LongForkOutcome.Waited, LongForkBasis.Unfiltered)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby standby [7, 9] from 12", "running from 12", "invisible [7, 9]" }));
    }

    [Test]
    public async Task A_restored_token_with_a_standby_known_to_have_its_position_asks_that_standby()
    {
        var restored = new ReadHistory();
        restored.TokenRestored();
        _trips.Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null);
        _trips.OnStandby = [7];
        _trips.Invisible.Enqueue(0);

        var check = await _wait.BeforePrimaryReadAsync(restored, null, async: true, CancellationToken.None, new TokenStandby(true, _standby));

        Assert.That((check.Outcome, check.Basis), Is.EqualTo((LongForkOutcome.Waited, LongForkBasis.Standby)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby standby [7] from 8", "invisible [7]" }));
        Assert.That((restored.TokenReadSinceLongForkCheck, restored.LongForkDue), Is.EqualTo((false, false)), "checked once");
    }

    [Test]
    public async Task A_restored_token_with_no_standby_known_to_have_its_position_takes_the_unfiltered_wait()
    {
        var restored = new ReadHistory();
        restored.TokenRestored();
        _trips.Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null);

        var check = await _wait.BeforePrimaryReadAsync(restored, null, async: true, CancellationToken.None, new TokenStandby(true, null));

        Assert.That((check.Outcome, check.Basis), Is.EqualTo((LongForkOutcome.Waited, LongForkBasis.Unfiltered)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 8", "invisible [7]" }));
    }

    [Test]
    public async Task A_restored_token_that_asks_nothing_of_this_cluster_costs_nothing_and_is_cleared()
    {
        var restored = new ReadHistory();
        restored.TokenRestored();

        var check = await _wait.BeforePrimaryReadAsync(restored, null, async: true, CancellationToken.None, default);

        Assert.That(check.Outcome, Is.EqualTo(LongForkOutcome.NotNeeded));
        Assert.That((_trips.Calls.Count, restored.LongForkDue), Is.EqualTo((0, false)));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_server_failure_never_fails_the_read(bool async)
    {
        var scope = ReadOnStandby();
        _trips.Failure = new NpgsqlException("connection refused");

        var check = await _wait.BeforePrimaryReadAsync(scope, null, async, CancellationToken.None);

        Assert.That(check.Outcome, Is.EqualTo(LongForkOutcome.Unverified));
    }

    [Test]
    public async Task A_standby_read_that_finished_after_the_check_began_is_checked_at_the_next_move()
    {
        var scope = ReadOnStandby();
        _trips.Primary = new PrimaryTransactions([], Xmax: 8, Committed: []);
        _trips.OnPrimary = () =>
        {
            _time.Advance(TimeSpan.FromMilliseconds(1));
            scope.Served(_standby, _standby.Incarnation, _time.GetTimestamp()); // another context of the scope
        };

        await _wait.BeforePrimaryReadAsync(scope, null, async: true, CancellationToken.None);

        Assert.That(scope.StandbyReadSinceLongForkCheck, Is.SameAs(_standby));
    }

    [Test]
    public async Task The_lease_s_and_the_ambient_scope_s_standbys_are_both_asked()
    {
        var other = new ReplicaEndpoint(1, "other", _dataSource, _time, TimeSpan.FromSeconds(1));
        var lease = ReadOnStandby();
        var ambient = new ReadHistory();
        ambient.Served(other, other.Incarnation, _time.GetTimestamp());
        _trips.Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null);
        _trips.OnStandby = [];

        var check = await _wait.BeforePrimaryReadAsync(lease, ambient, async: true, CancellationToken.None);

        Assert.That(check.RoundTrips, Is.EqualTo(3));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby standby [7] from 8", "standby other [7] from 8" }));
        Assert.That(new[] { lease.StandbyReadSinceLongForkCheck, ambient.StandbyReadSinceLongForkCheck }, Is.All.Null);
    }

    private ReadHistory ReadOnStandby()
    {
        var history = new ReadHistory();
        history.Stick(_standby, _standby.Incarnation);
        history.Served(_standby, _standby.Incarnation, _time.GetTimestamp());
        _time.Advance(TimeSpan.FromMilliseconds(1));
        return history;
    }

    /// <summary>Advances the fake clock until the check ends (a bounded number of steps).</summary>
    private async Task<LongForkCheck> DriveAsync(ValueTask<LongForkCheck> pending)
    {
        var task = pending.AsTask();
        for (var step = 0; step < 10_000 && !task.IsCompleted; step++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(1));
            await Task.Yield();
        }

        Assert.That(task.IsCompleted, Is.True, "the check did not end");
        return await task;
    }
}
