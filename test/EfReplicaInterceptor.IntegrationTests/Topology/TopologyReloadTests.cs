using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>
/// Replicas added and removed through <c>appsettings.json</c> while four readers run, through the DI host and a real JSON
/// file with <c>reloadOnChange</c>: the added standby takes reads within two probe rounds of the change being seen; the
/// removed one takes none once drained and has no session of the library left (asked of the server:
/// <c>pg_stat_activity</c>); a bad edit is refused and the readers go on on the old topology; no read fails.
/// </summary>
[NonParallelizable]
public sealed class TopologyReloadTests
{
    private const string ApplicationName = "efreplica-topology-reload";
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    private PostgresReplicaSet _servers = null!;
    private string _directory = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await PostgresReplicaSet.StartAsync(standbys: 1);
        await _servers.Primary.ExecuteAsync(ShopContext.Schema);
        await _servers.Primary.ExecuteAsync("INSERT INTO people (name, mood) VALUES ('topology', 'happy')");
        await _servers.WaitForReplayAsync(_servers.Standby);
        _directory = Directory.CreateTempSubdirectory("efreplica-topology-").FullName;
    }

    [OneTimeTearDown]
    public async Task StopServers()
    {
        await _servers.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public async Task Replicas_added_and_removed_in_appsettings_json_take_effect_while_reads_run()
    {
        var first = _servers.Standby;
        var file = Path.Combine(_directory, "appsettings.json");
        Write(file, Settings((first.Name, first.ConnectionString, 1)));

        var logs = new EventCollector();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, ContentRootPath = _directory });
        builder.Configuration.AddJsonFile(file, optional: false, reloadOnChange: true);
        builder.Logging.SetMinimumLevel(LogLevel.Debug).AddProvider(logs);
        builder.Services.AddEfReplica(builder.Configuration.GetSection("EfReplica"), TestCluster.MapTypes);
        builder.Services.AddDbContext<ShopContext>((sp, options) =>
        {
            var cluster = sp.GetRequiredService<EfReplicaCluster>();
            options.UseNpgsql(cluster.PrimaryDataSource, npgsql => npgsql.MapEnum<Mood>("mood")).AddInterceptors(cluster.Interceptors);
        });

        using var host = builder.Build();
        await host.StartAsync();
        var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
        await Poll.Until(() => cluster.Replicas.Count == 1 && cluster.Replicas[0].IsAdmitted, TimeSpan.FromSeconds(10));

        using var stop = new CancellationTokenSource();
        var reads = new ConcurrentQueue<Read>();
        var failures = new ConcurrentQueue<Exception>();
        var clock = Stopwatch.StartNew();
        var readers = Enumerable.Range(0, 4).Select(_ => Task.Run(() => ReadUntilAsync(host.Services, clock, () => cluster.Monitor.Rounds, reads, failures, stop.Token))).ToArray();
        try
        {
            await Poll.Until(() => reads.Count > 50, TimeSpan.FromSeconds(10));

            // Added: a new standby, then listed in the file.
            var second = await _servers.AddStandbyAsync();
            await _servers.WaitForReplayAsync(second);
            Write(file, Settings((first.Name, first.ConnectionString, 1), (second.Name, second.ConnectionString, 1)));
            await Poll.Until(() => cluster.ReplicaNames.Contains(second.Name), TimeSpan.FromSeconds(10));
            var roundsWhenSeen = cluster.Monitor.Rounds;
            var seenAt = clock.Elapsed;
            await Poll.Until(() => reads.Any(read => read.Port == second.Port), TimeSpan.FromSeconds(10));
            var firstOnSecond = reads.Where(read => read.Port == second.Port).MinBy(read => read.Ended);
            var roundsToFirstRead = firstOnSecond.Rounds - roundsWhenSeen;
            var firstReadAfter = firstOnSecond.Ended - seenAt;

            // A bad edit: refused, the topology stays, reads go on.
            var badEdits = new[]
            {
                Settings((first.Name, first.ConnectionString, 1), (second.Name, second.ConnectionString, 1)).Replace("\"Weight\": 1", "\"Wieght\": 1", StringComparison.Ordinal),
                Settings((first.Name, first.ConnectionString, 1), (second.Name, second.ConnectionString, 0)),
            };
            foreach (var bad in badEdits)
            {
                var refusedBefore = logs.Count(EfReplicaEventId.TopologyChangeRefused);
                var readsBefore = reads.Count;
                Write(file, bad);
                await Poll.Until(() => logs.Count(EfReplicaEventId.TopologyChangeRefused) > refusedBefore, TimeSpan.FromSeconds(10));
                await Poll.Until(() => reads.Count > readsBefore + 50, TimeSpan.FromSeconds(10));
                Assert.That(cluster.ReplicaNames, Is.EqualTo(new[] { first.Name, second.Name }), "the running topology stays");
            }

            // Removed: the first standby leaves the file, while a reader EF holds open was served by it.
            var sessionsBefore = await LibrarySessions(first);
            var (heldScope, held) = await OpenReaderOnAsync(host.Services, first.Port);
            Write(file, Settings((second.Name, second.ConnectionString, 1)));
            await Poll.Until(() => !cluster.ReplicaNames.Contains(first.Name), TimeSpan.FromSeconds(10));
            // The reader EF still holds is a read in flight on the removed standby (the read deadline watches it to its end):
            // the standby stays in use until EF disposes it, and then drains.
            var drainedWhileHeld = cluster.Topology.WhenDrainedAsync().IsCompleted;
            var heldFinished = !await held.MoveNextAsync(); // the reader handed to EF before the removal ends normally
            await held.DisposeAsync();
            heldScope.Dispose();
            await cluster.Topology.WhenDrainedAsync().WaitAsync(TimeSpan.FromSeconds(30));
            var drainedAt = clock.Elapsed;
            var readsAtDrain = reads.Count;
            await Poll.Until(() => reads.Count > readsAtDrain + 200, TimeSpan.FromSeconds(20));
            await Poll.Until(() => LibrarySessions(first).GetAwaiter().GetResult() == 0, TimeSpan.FromSeconds(5));

            await stop.CancelAsync();
            await Task.WhenAll(readers);
            var all = reads.ToList();
            var lateOnRemoved = all.Count(read => read.Started > drainedAt && read.Port == first.Port);
            var byPort = all.GroupBy(static read => read.Port).ToDictionary(static group => group.Key, static group => group.Count());
            TestContext.Out.WriteLine(
                $"{all.Count} reads ({string.Join(", ", byPort.Select(pair => $"port {pair.Key}: {pair.Value}"))}), {failures.Count} failed; "
                + $"the added standby's first read {firstReadAfter.TotalMilliseconds:0} ms and {roundsToFirstRead} probe rounds after the change was seen; "
                + $"reads on the removed one after its drain: {lateOnRemoved}; its library sessions before removal {sessionsBefore}, after the drain 0; "
                + $"drain: {logs.Lines.FirstOrDefault(line => line.Contains($" {EfReplicaEventId.ReplicaDrained}: ", StringComparison.Ordinal))}");
            Assert.Multiple(() =>
            {
                Assert.That(failures, Is.Empty, "no read fails while the topology changes");
                Assert.That(sessionsBefore, Is.GreaterThan(0), "the library's sessions on the standby are seen (the probe's kept connection at least)");
                Assert.That(roundsToFirstRead, Is.LessThanOrEqualTo(2), "the added standby takes reads within two probe rounds of the change being seen");
                Assert.That(lateOnRemoved, Is.Zero, "no read reaches the removed standby after its drain");
                Assert.That(heldFinished, Is.True, "a read in flight on the removed standby finishes on its old data source");
                Assert.That(drainedWhileHeld, Is.False, "a reader EF holds keeps the removed standby in use until it is disposed");
                Assert.That(byPort.GetValueOrDefault(second.Port), Is.GreaterThan(100), "the added standby takes its share");
                Assert.That(logs.Lines, Has.Some.Contains("Wieght"), "the refusal names the setting");
                Assert.That(logs.Lines, Has.None.Contains(new NpgsqlConnectionStringBuilder(first.ConnectionString).Password ?? "no password at all"), "no value is logged");
                Assert.That(logs.Count(EfReplicaEventId.ReplicaJoinedTopology), Is.EqualTo(1));
                Assert.That(logs.Count(EfReplicaEventId.ReplicaLeftTopology), Is.EqualTo(1));
            });
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(readers);
            await host.StopAsync();
        }
    }

    /// <summary>
    /// A query EF is still reading (its reader open, one row read) that the library ran on the server at
    /// <paramref name="port"/>: new contexts are tried until round-robin puts one there.
    /// </summary>
    private static async Task<(IServiceScope Scope, IAsyncEnumerator<ServerSide> Reader)> OpenReaderOnAsync(IServiceProvider services, int port)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var scope = services.CreateScope();
            var reader = scope.ServiceProvider.GetRequiredService<ShopContext>().WhereAmI().AsAsyncEnumerable().GetAsyncEnumerator();
            if (await reader.MoveNextAsync() && reader.Current.Port == port)
            {
                return (scope, reader);
            }

            await reader.DisposeAsync();
            scope.Dispose();
        }

        throw new InvalidOperationException($"No read reached port {port} in 100 tries.");
    }

    /// <summary>The library's sessions on <paramref name="server"/> (its replica connection strings carry the application name).</summary>
    private static Task<long> LibrarySessions(PostgresServer server)
        => server.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{ApplicationName}'");

    private static async Task ReadUntilAsync(IServiceProvider services, Stopwatch clock, Func<long> rounds, ConcurrentQueue<Read> reads, ConcurrentQueue<Exception> failures, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var started = clock.Elapsed;
            try
            {
                using var scope = services.CreateScope();
                var context = scope.ServiceProvider.GetRequiredService<ShopContext>();
                var side = await context.WhereAmI().SingleAsync(CancellationToken.None);
                reads.Enqueue(new Read(side.Port, started, clock.Elapsed, rounds()));
            }
            catch (Exception exception)
            {
                failures.Enqueue(exception);
                TestContext.Out.WriteLine($"read failed: {exception}");
            }
        }
    }

    private string Settings(params (string Name, string ConnectionString, int Weight)[] replicas)
    {
        var document = new
        {
            EfReplica = new
            {
                Primary = TestCluster.WithPool(_servers.Primary.ConnectionString, 20),
                HealthCheckInterval = "00:00:00.200",
                Replicas = replicas.Select(static replica => new
                {
                    replica.Name,
                    ConnectionString = new NpgsqlConnectionStringBuilder(TestCluster.WithPool(replica.ConnectionString, 20)) { ApplicationName = ApplicationName }.ConnectionString,
                    replica.Weight,
                }).ToArray(),
            },
        };
        return JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Replaces the file as an editor that saves atomically does (a reader never sees it half written).</summary>
    private static void Write(string file, string json)
    {
        var temporary = file + ".tmp";
        File.WriteAllText(temporary, json);
        File.Move(temporary, file, overwrite: true);
    }

    /// <summary>One read: the server that ran it, when it started and ended, and the monitor's completed probe rounds at its end.</summary>
    private readonly record struct Read(int Port, TimeSpan Started, TimeSpan Ended, long Rounds);

    /// <summary>Every log line with its event id.</summary>
    private sealed class EventCollector : ILoggerProvider
    {
        private readonly ConcurrentQueue<(int Id, string Line)> _events = new();

        public IReadOnlyList<string> Lines => [.. _events.Select(static e => e.Line)];

        public int Count(int id) => _events.Count(e => e.Id == id);

        public ILogger CreateLogger(string categoryName) => new Logger(_events);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<(int, string)> events) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
                => events.Enqueue((eventId.Id, $"{logLevel} {eventId.Id}: {formatter(state, exception)}"));
        }
    }
}
