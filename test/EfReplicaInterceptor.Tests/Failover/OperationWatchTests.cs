using EfReplicaInterceptor.Failover;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>
/// The library's own deadline, transition by transition on a fake clock: a silent server is given up on, a slow query on a
/// server that answers its probes is not, the caller's cancellation and the hard stop are honoured. Breaking a real
/// connection of a hung server is proven in the integration tests (HungServerTests).
/// </summary>
public sealed class OperationWatchTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    private readonly FakeTimeProvider _clock;
    private readonly DeadlineTimer _timer;

    public OperationWatchTests()
    {
        _clock = new FakeTimeProvider();
        _timer = new DeadlineTimer(_clock);
    }

    [Test]
    public void A_server_silent_for_the_whole_deadline_is_given_up_on()
    {
        var liveness = new ServerLiveness(_clock);
        using var watch = Watch(liveness);

        _clock.Advance(Deadline - TimeSpan.FromMilliseconds(1));
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None));
        _clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Unresponsive));
        Assert.That(watch.Failure(inner: null), Is.TypeOf<ServerDeadlineException>().And.InstanceOf<TimeoutException>());
        Assert.That(FailoverErrors.Classify(watch.Failure(inner: null), FailurePhase.Executing, onStandby: true), Is.EqualTo(ServerErrorKind.Unresponsive));
    }

    [Test]
    public void A_slow_query_on_a_server_that_answers_its_probes_runs_on_until_the_answers_stop()
    {
        var liveness = new ServerLiveness(_clock);
        using var watch = Watch(liveness);

        for (var second = 0; second < 20; second++)
        {
            _clock.Advance(TimeSpan.FromSeconds(1));
            liveness.Answered(); // the monitor's probe, every interval
        }

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None), "20 s into a query on a healthy server");

        _clock.Advance(Deadline - TimeSpan.FromMilliseconds(1));
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None));
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Unresponsive), "the deadline counts from the server's last answer");
    }

    [Test]
    public void An_operation_started_on_a_server_already_silent_waits_only_for_the_rest_of_the_deadline_but_at_least_the_grace()
    {
        var liveness = new ServerLiveness(_clock);
        _clock.Advance(TimeSpan.FromSeconds(2.5)); // the server's last answer was 2.5 s ago
        using var late = Watch(liveness);

        _clock.Advance(Grace - TimeSpan.FromMilliseconds(1));
        Assert.That(late.Verdict, Is.EqualTo(WatchVerdict.None), "an operation always gets the grace itself");
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(late.Verdict, Is.EqualTo(WatchVerdict.Unresponsive), "the server has been silent for more than the deadline");

        using var later = Watch(liveness);
        _clock.Advance(Grace);
        Assert.That(later.Verdict, Is.EqualTo(WatchVerdict.Unresponsive));
    }

    [Test]
    public void Without_a_liveness_the_deadline_runs_from_the_start()
    {
        using var watch = new OperationWatch("the probe's server", liveness: null, Deadline, Grace, TimeSpan.Zero, _timer, CancellationToken.None);

        _clock.Advance(Deadline);

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Unresponsive));
    }

    [Test]
    public void An_operation_that_ends_in_time_is_never_given_up_on()
    {
        var watch = Watch(new ServerLiveness(_clock));

        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That(watch.Complete(), Is.EqualTo(WatchVerdict.None));
        _clock.Advance(TimeSpan.FromMinutes(5));

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None));
    }

    [Test]
    public void The_callers_cancellation_ends_the_operation_after_the_grace_even_on_a_server_that_answers()
    {
        var liveness = new ServerLiveness(_clock);
        using var cancellation = new CancellationTokenSource();
        using var watch = Watch(liveness, cancellation.Token);

        _clock.Advance(TimeSpan.FromSeconds(1));
        cancellation.Cancel();
        _clock.Advance(Grace - TimeSpan.FromMilliseconds(1));
        liveness.Answered();
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None), "Npgsql's own cancellation gets the grace first");
        _clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Cancelled));
        Assert.That(watch.Failure(inner: null), Is.InstanceOf<OperationCanceledException>()
            .With.Property(nameof(OperationCanceledException.CancellationToken)).EqualTo(cancellation.Token));
    }

    [Test]
    public void The_command_timeout_plus_the_grace_is_a_hard_stop()
    {
        var liveness = new ServerLiveness(_clock);
        using var watch = new OperationWatch("replica 'r1'", liveness, Deadline, Grace, TimeSpan.FromSeconds(10), _timer, CancellationToken.None);

        for (var second = 0; second < 11; second++)
        {
            _clock.Advance(TimeSpan.FromSeconds(1));
            liveness.Answered();
        }

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None));
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Unresponsive), "10 s timeout + 2 s grace, though the server answers probes");
    }

    [Test]
    public void A_watch_that_may_not_be_told_of_its_end_ends_when_its_connection_is_idle()
    {
        using var connection = new NpgsqlConnection();
        using var watch = new OperationWatch("the primary", new ServerLiveness(_clock), Deadline, Grace, TimeSpan.Zero, _timer, CancellationToken.None, endsWhenIdle: true);
        watch.Attach(connection);

        _clock.Advance(Deadline * 3);

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None), "the connection is not executing: the command ended unseen");
    }

    [Test]
    public void A_result_its_consumer_holds_between_calls_is_not_timed_even_on_a_silent_server()
    {
        using var watch = Watch(new ServerLiveness(_clock));
        watch.BeginResult();

        _clock.Advance(Deadline * 10); // the application's own time between two rows; the server says nothing meanwhile

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None));
    }

    [Test]
    public void A_call_into_a_result_on_a_silent_server_is_given_up_on_at_the_deadline_from_its_start()
    {
        using var watch = Watch(new ServerLiveness(_clock));
        watch.BeginResult();
        _clock.Advance(Deadline * 2);

        watch.Enter(); // the next row: the server hung meanwhile
        _clock.Advance(Deadline - TimeSpan.FromMilliseconds(1));
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None), "the deadline is re-armed by the call, not counted from the last probe");
        _clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Unresponsive));
    }

    [Test]
    public void Rows_that_keep_coming_count_as_answers_though_the_monitor_hears_nothing()
    {
        using var watch = Watch(new ServerLiveness(_clock)); // no probe answers at all
        watch.BeginResult();

        for (var row = 0; row < 100; row++)
        {
            watch.Enter();
            _clock.Advance(Deadline * 0.9); // each row takes most of the deadline (more than the grace) to arrive
            watch.Exit();
        }

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None), "90 deadlines of streaming, no call as long as one");
        watch.Enter();
        _clock.Advance(Deadline);
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Unresponsive));
    }

    [Test]
    public void A_slow_call_into_a_result_on_a_server_that_answers_its_probes_runs_on_until_its_hard_stop()
    {
        var liveness = new ServerLiveness(_clock);
        using var watch = new OperationWatch("replica 'r1'", liveness, Deadline, Grace, TimeSpan.FromSeconds(10), _timer, CancellationToken.None);
        watch.BeginResult();
        for (var call = 0; call < 10; call++)
        {
            watch.Enter();
            for (var second = 0; second < 5; second++)
            {
                _clock.Advance(TimeSpan.FromSeconds(1));
                liveness.Answered();
            }

            watch.Exit();
        }

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None), "50 s of result, past the command timeout, but no call longer than 5 s");
        watch.Enter();
        for (var second = 0; second < 11; second++)
        {
            _clock.Advance(TimeSpan.FromSeconds(1));
            liveness.Answered();
        }

        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.None));
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That(watch.Verdict, Is.EqualTo(WatchVerdict.Unresponsive), "one call of 10 s timeout + 2 s grace");
    }

    [Test]
    public void This_Npgsql_lets_a_hung_servers_connection_be_broken()
        => Assert.That(ConnectionBreaker.IsSupported, Is.True,
            "Npgsql's internals ConnectionBreaker reaches into changed: reads on a hung server would fall back to abandoning (async) or waiting (sync)");

    private OperationWatch Watch(ServerLiveness liveness, CancellationToken cancellationToken = default)
        => new("replica 'r1'", liveness, Deadline, Grace, TimeSpan.Zero, _timer, cancellationToken);
}
