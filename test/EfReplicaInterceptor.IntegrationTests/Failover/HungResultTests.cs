using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Failover;

/// <summary>
/// The read deadline reaches the last row, and EF's own open of the primary: a standby hung (SIGSTOP) while EF streams a
/// 100,000-row result fails the consumer with the typed error within the deadline (plus one probe interval), saying how many
/// rows it had, leaks no connection and disturbs no other reader; EF's deferred open of a hung primary ends within the
/// deadline, not Npgsql's 15 s connect timeout. The bounds are generous; the measured times are printed.
/// </summary>
[NonParallelizable]
public sealed partial class HungResultTests
{
    private const string ApplicationName = "efreplica-hung-result";
    private const int RowCount = 100_000;
    private const int RowsBeforeHang = 1_000;

    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan ReadDeadline = TimeSpan.FromSeconds(1);

    /// <summary>The deadline and one probe interval, with room for a busy 2-core machine.</summary>
    private static readonly TimeSpan Bound = ReadDeadline + Interval + TimeSpan.FromSeconds(2);

    private PostgresReplicaSet _servers = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await ShopServers.StartAsync(standbys: 2);
        if (_servers.IsExternal)
        {
            await _servers.DisposeAsync();
            Assert.Ignore("Hanging servers needs servers started by the tests.");
        }
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [TearDown]
    public async Task ResumeEverything()
    {
        foreach (var server in _servers.Standbys.Prepend(_servers.Primary))
        {
            await server.ResumeAsync();
        }
    }

    private Task<TestCluster> Cluster(Action<EfReplicaOptions>? configure = null) => TestCluster.CreateAsync(_servers, options =>
    {
        options.HealthCheckInterval = Interval;
        options.HealthCheckTimeout = ProbeTimeout;
        options.Failover.ReadDeadline = ReadDeadline;
        options.MaxReplicaLag = TimeSpan.FromSeconds(30);
        options.Primary = Named(options.Primary!);
        foreach (var replica in options.Replicas)
        {
            replica.ConnectionString = Named(replica.ConnectionString!);
        }

        configure?.Invoke(options);
    });

    /// <summary>The cluster, once the monitor has admitted every standby (the tests start reads on both).</summary>
    private async Task<TestCluster> AdmittedClusterAsync()
    {
        var cluster = await Cluster();
        try
        {
            await Poll.Until(() => cluster.Cluster.Replicas.All(replica => replica.IsAdmitted), TimeSpan.FromSeconds(10));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private static string Named(string connectionString) => new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = ApplicationName }.ConnectionString;

    public enum Consumption
    {
        AsAsyncEnumerable,
        ToListAsync,
        AsEnumerable,
        ToList,
    }

    [TestCase(Consumption.AsAsyncEnumerable)]
    [TestCase(Consumption.ToListAsync)]
    [TestCase(Consumption.AsEnumerable)]
    [TestCase(Consumption.ToList)]
    public async Task A_standby_hung_while_EF_streams_a_large_result_fails_the_consumer_typed_within_the_deadline(Consumption consumption)
    {
        await using var cluster = await AdmittedClusterAsync();
        await using (var warm = cluster.NewContext())
        {
            _ = await warm.WhereAmI().SingleAsync(); // the model is built and the classifier ready before the clock starts
        }

        var tap = new Tap();
        var consumer = Task.Factory.StartNew(() => Consume(cluster, tap, consumption), TaskCreationOptions.LongRunning).Unwrap();
        Assert.That(await Task.WhenAny(tap.Reached.Task, consumer, Task.Delay(TimeSpan.FromSeconds(30))), Is.SameAs(tap.Reached.Task),
            $"the consumer did not reach row {RowsBeforeHang}: {consumer.Exception?.GetBaseException().Message}");
        var hung = _servers.Standbys.Single(standby => standby.Port == tap.Port);
        var other = _servers.Standbys.Single(standby => standby.Port != tap.Port);

        // Other readers, on their own contexts, all along: they may meet the hung standby and must go elsewhere.
        var clock = Stopwatch.StartNew();
        var reads = new ConcurrentQueue<(TimeSpan At, int Port)>();
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var context = cluster.NewContext();
                    reads.Enqueue((clock.Elapsed, (await context.WhereAmI().SingleAsync()).Port));
                }
                catch (Exception exception)
                {
                    failures.Enqueue($"{exception.GetType().Name}: {exception.Message}");
                }
            }
        })).ToArray();

        Exception? error;
        TimeSpan took;
        TimeSpan hungAt;
        await hung.HangAsync();
        try
        {
            hungAt = clock.Elapsed;
            tap.Resume.Set(); // the consumer reads on from the hung standby
            error = await Record(consumer);
            took = clock.Elapsed - hungAt;
            await Poll.Until(() => reads.Count(r => r.At > hungAt + took && r.Port == other.Port) >= 5, TimeSpan.FromSeconds(10));
        }
        finally
        {
            await hung.ResumeAsync();
        }

        await stop.CancelAsync();
        await Task.WhenAll(readers);

        var failover = error as EfReplicaFailoverException;
        var rows = failover is null ? -1 : long.Parse(RowsRead().Match(failover.Message).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var events = cluster.Recorder.AllEvents.Where(e => e.EventId == EfReplicaEventId.ReadFailedMidResult).ToList();
        var busy = await SettledBusy(hung);
        TestContext.Out.WriteLine(
            $"{consumption}: standby '{hung.Name}' hung after {RowsBeforeHang} rows of {RowCount}; the consumer failed {took.TotalMilliseconds:0} ms later " +
            $"(bound {Bound.TotalMilliseconds:0} ms) after {rows} rows ({tap.Count} materialised) with {error?.GetType().Name}: {error?.Message}; " +
            $"{reads.Count(r => r.At > hungAt)} other reads during and after the hang, {failures.Count} failed; busy backends on it after resume: {busy}");
        Assert.Multiple(() =>
        {
            Assert.That(error, Is.TypeOf<EfReplicaFailoverException>(), "the consumer gets the library's typed error");
            Assert.That(failover?.Outcome, Is.EqualTo(FailoverOutcome.NotApplied));
            Assert.That(failover?.InnerException, Is.InstanceOf<TimeoutException>(), "the deadline's error is inside");
            Assert.That(took, Is.LessThanOrEqualTo(Bound), "the consumer waited on the hung standby past the deadline");
            Assert.That(rows, Is.InRange(RowsBeforeHang, RowCount - 1), "the message says how many rows had been read, and the hang came mid-result");
            Assert.That(rows, Is.EqualTo(tap.Count), "the rows in the message are those EF was handed");
            Assert.That(events, Is.Not.Empty, "the ReadFailedMidResult event");
            Assert.That(failures, Is.Empty, "another reader failed");
            Assert.That(busy, Is.Zero, "a connection of the hung read is still in use on the standby after it resumed");
        });

        await cluster.Cluster.DisposeAsync();
        Assert.That(await Settled(() => Backends(hung)), Is.Zero, "a connection to the hung standby was left open (never returned to its pool, or leaked)");
    }

    private static async Task Consume(TestCluster cluster, Tap tap, Consumption consumption)
    {
        await using var context = cluster.NewContext();
        var query = context.Database
            .SqlQueryRaw<StreamRow>($"SELECT g AS \"N\", inet_server_port() AS \"Port\", repeat('x', 500) AS \"Pad\" FROM generate_series(1, {RowCount}) AS g")
            .Select(row => tap.Row(row));
        switch (consumption)
        {
            case Consumption.AsAsyncEnumerable:
                await foreach (var _ in query.AsAsyncEnumerable())
                {
                }

                break;
            case Consumption.ToListAsync:
                _ = await query.ToListAsync();
                break;
            case Consumption.AsEnumerable:
                foreach (var _ in query.AsEnumerable())
                {
                }

                break;
            default:
                _ = query.ToList();
                break;
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_read_whose_connection_is_lost_before_its_first_row_is_retried_on_another_standby(bool async)
    {
        await using var cluster = await AdmittedClusterAsync();
        await using var context = cluster.NewContext();
        _ = await context.WhereAmI().SingleAsync();

        // The server sends the row description at once and the only row seconds later: EF has its reader, no row yet.
        const int wanted = 19_999_999;
        var query = context.Database.SqlQueryRaw<int>($"SELECT g AS \"Value\" FROM generate_series(1, 20000000) AS g WHERE g = {wanted}");
        var reading = Task.Run(async () => async ? await query.ToListAsync() : query.ToList());
        var mark = $"%g = {wanted}%";
        var find = $"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '{mark}' AND pid <> pg_backend_pid()";
        var clock = Stopwatch.StartNew();
        PostgresServer? running = null;
        while (running is null && clock.Elapsed < TimeSpan.FromSeconds(10) && !reading.IsCompleted)
        {
            foreach (var standby in _servers.Standbys)
            {
                if (await standby.ScalarAsync<long>(find) > 0)
                {
                    running = standby;
                }
            }
        }

        Assert.That(running, Is.Not.Null, "the query was not seen running on a standby");
        await running!.ExecuteAsync($"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '{mark}' AND pid <> pg_backend_pid()");
        var rows = await reading;

        var retried = cluster.Recorder.AllEvents.Where(e => e.EventId == EfReplicaEventId.ReplicaFailedForCommand).ToList();
        TestContext.Out.WriteLine($"{(async ? "async" : "sync")}: the query's backend on '{running.Name}' was terminated before its row; the read returned {string.Join(", ", rows)}; " +
                                  $"{retried.Count} ReplicaFailedForCommand event(s): {retried.Select(e => e.Message).FirstOrDefault()}");
        Assert.That(rows, Is.EqualTo(new[] { wanted }), "the read ran again elsewhere and returned its row");
        Assert.That(retried, Is.Not.Empty, "the failure on the standby was seen and the read moved on");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task EFs_open_of_a_hung_primary_ends_within_the_deadline_with_the_typed_error(bool async)
    {
        // Npgsql's connect timeout is left at its default (15 s): only the library's deadline can end the open sooner.
        await using var cluster = await Cluster(options => options.Primary = new NpgsqlConnectionStringBuilder(options.Primary) { Timeout = 15 }.ConnectionString);
        await using var context = cluster.NewContext();
        var query = context.People.FromSqlRaw("SELECT * FROM people WHERE id = 1 FOR UPDATE"); // a locking read: EF runs it on its own connection
        _ = async ? await query.ToListAsync() : query.ToList();
        await context.Database.CloseConnectionAsync();
        cluster.Cluster.PrimaryDataSource.Clear(); // no idle pooled connection: the next open has to reach the server

        await _servers.Primary.HangAsync();
        var clock = Stopwatch.StartNew();
        Exception? error;
        try
        {
            error = await Record(Task.Run(async () => _ = async ? await query.ToListAsync() : query.ToList()));
        }
        finally
        {
            await _servers.Primary.ResumeAsync();
        }

        var took = clock.Elapsed;
        var bound = ReadDeadline + TimeSpan.FromSeconds(2);
        TestContext.Out.WriteLine($"{(async ? "async" : "sync")}: EF's open of the hung primary ended after {took.TotalMilliseconds:0} ms (bound {bound.TotalMilliseconds:0} ms): {error?.GetType().Name}: {error?.Message}");
        Assert.Multiple(() =>
        {
            Assert.That(error, Is.TypeOf<EfReplicaFailoverException>());
            Assert.That((error as EfReplicaFailoverException)?.Outcome, Is.EqualTo(FailoverOutcome.NotApplied), "nothing was sent");
            Assert.That(took, Is.LessThanOrEqualTo(bound), "EF's open waited on the hung primary past the library's deadline");
        });

        _ = async ? await query.ToListAsync() : query.ToList(); // the same context works again once the primary answers
    }

    private static async Task<Exception?> Record(Task task)
    {
        try
        {
            await task;
            return null;
        }
        catch (Exception exception)
        {
            return exception;
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_consumer_that_stops_early_is_not_failed_when_its_standby_session_dies_before_the_close(bool async)
    {
        await using var cluster = await AdmittedClusterAsync();
        await using var context = cluster.NewContext();
        var query = context.Database.SqlQueryRaw<StreamRow>(
            $"SELECT g AS \"N\", inet_server_port() AS \"Port\", repeat('x', 500) AS \"Pad\" FROM generate_series(1, {RowCount}) AS g");

        // The consumer takes ten rows of 100,000 and stops; before it closes, the session on the standby dies (terminated,
        // as a restart or a crash would end it). The close drains what is left of the result and meets the end of the stream.
        var taken = new List<StreamRow>();
        var asyncRows = async ? query.AsAsyncEnumerable().GetAsyncEnumerator() : null;
        var syncRows = async ? null : query.AsEnumerable().GetEnumerator();
        while (taken.Count < 10 && (async ? await asyncRows!.MoveNextAsync() : syncRows!.MoveNext()))
        {
            taken.Add(async ? asyncRows!.Current : syncRows!.Current);
        }

        var standby = _servers.Standbys.Single(server => server.Port == taken[0].Port);
        var mark = $"%generate_series(1, {RowCount})%";
        Assert.That(await standby.ScalarAsync<bool>(
            $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{ApplicationName}' AND query LIKE '{mark}' AND pid <> pg_backend_pid()"), Is.True);
        Assert.That(await Settled(() => standby.ScalarAsync<long>(
            $"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{ApplicationName}' AND query LIKE '{mark}' AND pid <> pg_backend_pid()")), Is.Zero);

        var closing = async
            ? Record(asyncRows!.DisposeAsync().AsTask())
            : Record(Task.Run(() => syncRows!.Dispose()));
        var error = await closing;

        var events = cluster.Recorder.AllEvents.Where(e => e.EventId == EfReplicaEventId.ReadFailedMidResult).ToList();
        TestContext.Out.WriteLine($"{(async ? "async" : "sync")}: took {taken.Count} rows from '{standby.Name}', its session was terminated, the close ended with " +
                                  $"{error?.GetType().Name ?? "no error"} {error?.Message}; ReadFailedMidResult events: {events.Select(e => e.Message).FirstOrDefault()}");
        Assert.Multiple(() =>
        {
            Assert.That(error, Is.Null, "the consumer had every row it asked for: the close of a dead session is not its error");
            Assert.That(taken.Select(row => row.N), Is.EqualTo(Enumerable.Range(1, 10).Select(n => (long)n)));
            Assert.That(events, Is.Not.Empty, "the lost session is still reported (event 1008) and the failure policy applies to the standby");
        });

        // The context goes on: its next read runs (elsewhere or on the standby again once the monitor admits it).
        Assert.That(async ? await context.WhereAmI().SingleAsync() : context.WhereAmI().Single(), Is.Not.Null);
    }

    private static Task<long> Backends(PostgresServer server)
        => server.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{ApplicationName}'");

    /// <summary>The library's connections to <paramref name="server"/> still running something, once the broken ones have had time to end.</summary>
    private static Task<long> SettledBusy(PostgresServer server)
        => Settled(() => server.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{ApplicationName}' AND state = 'active'"));

    /// <summary>A backend ends a moment after its socket closes: polls, boundedly, until the count is zero.</summary>
    private static async Task<long> Settled(Func<Task<long>> count)
    {
        var clock = Stopwatch.StartNew();
        var value = await count();
        while (value != 0 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
            value = await count();
        }

        return value;
    }

    [GeneratedRegex(@"after (\d+) row\(s\)")]
    private static partial Regex RowsRead();

    public sealed record StreamRow(long N, int Port, string Pad);

    /// <summary>Counts the rows EF materialises, and holds the consumer at <see cref="RowsBeforeHang"/> until the test hung its standby.</summary>
    private sealed class Tap
    {
        private int _count;

        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ManualResetEventSlim Resume { get; } = new();

        public int Port { get; private set; }

        public int Count => Volatile.Read(ref _count);

        public StreamRow Row(StreamRow row)
        {
            if (Interlocked.Increment(ref _count) == RowsBeforeHang)
            {
                Port = row.Port;
                Reached.SetResult();
                Resume.Wait(TimeSpan.FromSeconds(30));
            }

            return row;
        }
    }
}
