using EfReplicaInterceptor.Failover;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>
/// The one protocol every statement of the library runs through, on a fake clock with a statement that stands in for the
/// server (a kept, never opened connection: nothing is sent): what counts as an answer, what the caller is told when the
/// watch gave up or the caller cancelled, and what outlives the call. Against real servers (hung ones included) the
/// protocol is proved by the integration tests of its callers (HungServerTests, SplitBrainTests).
/// </summary>
public sealed class ServerCallTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(3);

    private FakeTimeProvider _clock = null!;
    private WatchedServer _server = null!;
    private NpgsqlDataSource _dataSource = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new FakeTimeProvider();
        _dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        _server = new WatchedServer("replica 'r1'", _dataSource, new ServerLiveness(_clock), new ServerDeadlines(Deadline, TimeSpan.FromSeconds(2), _clock));
    }

    [TearDown]
    public void TearDown() => _dataSource.Dispose();

    [TestCase(false)]
    [TestCase(true)]
    public async Task An_answer_counts_as_the_servers_sign_of_life_and_ends_the_watch(bool async)
    {
        var statement = new Statement(Task.FromResult(42));
        _clock.Advance(TimeSpan.FromSeconds(1));

        var result = await Run(statement, async);

        Assert.That(result, Is.EqualTo(42));
        Assert.That(_server.Liveness.LastAnswer, Is.EqualTo(_clock.GetTimestamp()));
        Assert.That(statement.SucceededCalls, Is.EqualTo(1));
        Assert.That(_server.Deadlines.Timer.Pending, Is.Zero, "the watch completed");
        Assert.That(_server.Usage.InFlight, Is.Zero);
    }

    [Test]
    public async Task A_result_that_keeps_the_watch_leaves_it_running_until_its_owner_completes_it()
    {
        var statement = new Statement(Task.FromResult(42)) { Handover = CallHandover.Connection | CallHandover.Watch };

        await Run(statement, async: true);

        Assert.That(_server.Deadlines.Timer.Pending, Is.EqualTo(1));
        Assert.That(_server.Usage.InFlight, Is.EqualTo(1), "the operation is still in flight on the server");
        statement.Watch!.Complete();
        Assert.That(_server.Deadlines.Timer.Pending, Is.Zero);
        Assert.That(_server.Usage.InFlight, Is.Zero);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void A_servers_own_error_is_an_answer_and_reaches_the_caller_unchanged(bool async)
    {
        var error = new PostgresException("division by zero", "ERROR", "ERROR", "22012");
        var statement = new Statement(Task.FromException<int>(error));
        _clock.Advance(TimeSpan.FromSeconds(1));

        var thrown = Assert.ThrowsAsync<PostgresException>(() => Run(statement, async));

        Assert.That(thrown, Is.SameAs(error));
        Assert.That(statement.Failures, Is.EqualTo(new[] { (error as Exception, FailurePhase.Executing) }));
        Assert.That(_server.Liveness.LastAnswer, Is.EqualTo(_clock.GetTimestamp()), "the server answered, with an error");
        Assert.That(_server.Deadlines.Timer.Pending, Is.Zero);
    }

    [TestCase("08P01", "server conn crashed?")]
    [TestCase("08P01", "server login has been failing, try again later (server_login_retry)")]
    [TestCase("08006", "connection failure")]
    public void A_poolers_word_that_the_server_is_unreachable_is_no_sign_of_the_servers_life(string sqlState, string message)
    {
        var before = _server.Liveness.LastAnswer;
        var error = new PostgresException(message, "FATAL", "FATAL", sqlState);
        var statement = new Statement(Task.FromException<int>(error));
        _clock.Advance(TimeSpan.FromSeconds(1));

        var thrown = Assert.ThrowsAsync<PostgresException>(() => Run(statement, async: true));

        Assert.That(thrown, Is.SameAs(error), "the error still reaches the caller unchanged");
        Assert.That(_server.Liveness.LastAnswer, Is.EqualTo(before), "PgBouncer answered, not the server behind it");
    }

    [Test]
    public void The_servers_own_protocol_error_is_still_an_answer()
    {
        // PostgreSQL answers a malformed Bind with an 08P01 ERROR and keeps the session: the server is alive.
        var error = new PostgresException("bind message supplies 0 parameters", "ERROR", "ERROR", "08P01");
        var statement = new Statement(Task.FromException<int>(error));
        _clock.Advance(TimeSpan.FromSeconds(1));

        Assert.ThrowsAsync<PostgresException>(() => Run(statement, async: true));

        Assert.That(_server.Liveness.LastAnswer, Is.EqualTo(_clock.GetTimestamp()));
    }

    [Test]
    public void A_statement_still_running_when_the_server_has_been_silent_for_the_deadline_fails_with_the_deadline_whatever_Npgsql_says()
    {
        var running = new TaskCompletionSource<int>();
        var statement = new Statement(running.Task);
        var call = Run(statement, async: true);

        _clock.Advance(Deadline);
        running.SetException(new NpgsqlException("Exception while reading from stream")); // what a broken connection says
        var thrown = Assert.ThrowsAsync<ServerDeadlineException>(() => call);

        Assert.That(thrown!.InnerException, Is.InstanceOf<NpgsqlException>());
        Assert.That(statement.Failures.Single().Exception, Is.SameAs(thrown), "classified as the deadline, not as a lost connection");
        Assert.That(_server.Deadlines.Timer.Pending, Is.Zero);
    }

    [Test]
    public void The_callers_cancellation_is_a_cancellation_whatever_Npgsql_says()
    {
        using var cancellation = new CancellationTokenSource();
        var running = new TaskCompletionSource<int>();
        var statement = new Statement(running.Task);
        var call = Run(statement, async: true, cancellation.Token);

        cancellation.Cancel();
        running.SetException(new NpgsqlException("the command was cancelled by the server"));

        var thrown = Assert.ThrowsAsync<OperationCanceledException>(() => call);
        Assert.That(thrown!.CancellationToken, Is.EqualTo(cancellation.Token));
        Assert.That(statement.Failures.Single().Phase, Is.EqualTo(FailurePhase.Executing));
    }

    [Test]
    public void A_borrowed_connection_is_not_used_when_a_hung_call_on_it_could_only_be_ended_by_disposing_it()
    {
        var borrowed = new NpgsqlConnection();
        var statement = new Statement(Task.FromResult(42));
        var supported = ConnectionBreaker.IsSupported;
        ConnectionBreaker.IsSupported = false;
        try
        {
            // The library's own connection is opened instead: here from a data source with nothing listening, so opening fails.
            var call = ServerCall.RunAsync<Statement, int>(
                _server, _server.WatchRead(commandTimeoutSeconds: 0, default), borrowed, statement, async: true, default, borrowed: true).AsTask();

            Assert.CatchAsync<Exception>(() => call);
            Assert.That(statement.Failures.Select(failure => failure.Phase), Is.EqualTo(new[] { FailurePhase.Opening }));
            Assert.That(statement.Connections, Is.Empty, "the statement ran on the borrowed connection");
        }
        finally
        {
            ConnectionBreaker.IsSupported = supported;
        }
    }

    [Test]
    public async Task A_borrowed_connection_is_used_and_left_open_when_the_watch_can_break_it()
    {
        Assume.That(ConnectionBreaker.IsSupported, "this Npgsql exposes what breaking a connection needs");
        var borrowed = new NpgsqlConnection();
        var statement = new Statement(Task.FromResult(42));

        var result = await ServerCall.RunAsync<Statement, int>(
            _server, _server.WatchRead(commandTimeoutSeconds: 0, default), borrowed, statement, async: true, default, borrowed: true);

        Assert.That(result, Is.EqualTo(42));
        Assert.That(statement.Connections, Is.EqualTo(new[] { borrowed }));
    }

    private Task<int> Run(Statement statement, bool async, CancellationToken cancellationToken = default)
        => ServerCall.RunAsync<Statement, int>(
            _server, _server.WatchRead(commandTimeoutSeconds: 0, cancellationToken), new NpgsqlConnection(), statement, async, cancellationToken).AsTask();

    /// <summary>Stands in for the server: its run ends as <c>outcome</c> does.</summary>
    private sealed class Statement(Task<int> outcome) : IServerStatement<int>
    {
        public CallHandover Handover { get; init; }

        public int SucceededCalls { get; private set; }

        public OperationWatch? Watch { get; private set; }

        public List<(Exception Exception, FailurePhase Phase)> Failures { get; } = [];

        public NpgsqlCommand? CreateCommand(NpgsqlConnection connection) => null;

        public List<NpgsqlConnection> Connections { get; } = [];

        public Task<int> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command)
        {
            Connections.Add(connection);
            return outcome;
        }

        public int Run(NpgsqlConnection connection, NpgsqlCommand? command) => outcome.GetAwaiter().GetResult();

        public CallHandover Succeeded(int result, OperationWatch watch, NpgsqlConnection connection)
        {
            SucceededCalls++;
            Watch = watch;
            return Handover;
        }

        public void Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection) => Failures.Add((exception, phase));
    }
}
