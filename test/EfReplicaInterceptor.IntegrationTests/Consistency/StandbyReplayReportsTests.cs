using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// The primary's view of its standbys' replay, read with the position capture after a write, on real servers: a primary with
/// a synchronous standby (<c>remote_apply</c>), the cluster's only replica, and an asynchronous one the cluster does not know.
/// After a write the read-back runs on the synchronous standby (the server says so: <c>pg_is_in_recovery()</c>,
/// <c>inet_server_port()</c>) and sees the write, without a replay check: the capture's row for that standby showed it had
/// replayed the position. With a role that cannot see <c>pg_stat_replication</c>'s columns (no <c>pg_read_all_stats</c>)
/// the same loop needs the replay checks again, and still reads its writes.
/// </summary>
[NonParallelizable]
public sealed class StandbyReplayReportsTests
{
    private const int Writes = 20;
    private const string PlainRole = "efreplica_plain";
    private const string PlainPassword = "efreplica-plain-password";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private PostgresReplicaSet _servers = null!;

    private PostgresServer Synchronous => _servers.Standbys[0];

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await SynchronousReplicaSet.StartAsync(
            $"CREATE TABLE replay_rows (id bigserial PRIMARY KEY, note text NOT NULL); CREATE ROLE {PlainRole} LOGIN PASSWORD '{PlainPassword}'; "
            + $"GRANT SELECT, INSERT ON replay_rows TO {PlainRole}; GRANT USAGE ON SEQUENCE replay_rows_id_seq TO {PlainRole}",
            Bound);
        if (_servers.Backend != PostgresBackend.Local)
        {
            await _servers.DisposeAsync();
            Assert.Ignore("Container standbys reach the primary by its name on the set's Docker network, the library by a published port: no address matches, so no row is credited (by design, see docs/session-guarantees.md).");
        }
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [TestCase(false)]
    [TestCase(true)]
    public async Task After_a_write_the_read_back_runs_on_the_synchronous_standby_without_a_replay_check(bool async)
    {
        await using var cluster = await CreateClusterAsync(role: null);
        using var counters = new Counters(cluster.Cluster.Name);

        var reads = await WriteThenReadAsync(cluster, async);

        TestContext.Out.WriteLine($"async={async}: {Writes} write-then-read pairs; replay checks {counters.ReplayChecks}, standby replay reports {counters.Reports}, captures {counters.Captures}");
        Assert.That(reads.Select(r => r.Seen), Is.All.True, "a read missed its own write");
        Assert.That(reads.Select(r => (r.OnStandby, r.Port)), Is.All.EqualTo((true, Synchronous.Port)), "the read-back ran on the synchronous standby");
        Assert.That(counters.ReplayChecks, Is.Zero, "no replica was asked what it had replayed");
        Assert.That(counters.Reports, Is.GreaterThanOrEqualTo(Writes), "each capture credited the synchronous standby's row");
    }

    [Test]
    public async Task Without_pg_read_all_stats_there_is_no_row_and_the_replica_is_asked_again()
    {
        await using var cluster = await CreateClusterAsync(role: PlainRole);
        using var counters = new Counters(cluster.Cluster.Name);

        var reads = await WriteThenReadAsync(cluster, async: true);

        TestContext.Out.WriteLine($"role {PlainRole}: replay checks {counters.ReplayChecks}, standby replay reports {counters.Reports}, on the standby {reads.Count(r => r.OnStandby)} of {Writes}");
        Assert.That(reads.Select(r => r.Seen), Is.All.True, "a read missed its own write");
        Assert.That(counters.Reports, Is.Zero, "the role sees no walsender columns: nothing to credit, silently");
        Assert.That(counters.ReplayChecks, Is.GreaterThanOrEqualTo(Writes), "every read after a write asked the replica, as before");
    }

    /// <summary>In one scope (one context), <see cref="Writes"/> times: insert a row, read it back; where each read ran and whether it saw its row.</summary>
    private static async Task<List<(bool Seen, bool OnStandby, int Port)>> WriteThenReadAsync(TestCluster cluster, bool async)
    {
        await using var context = cluster.NewContext();
        var reads = new List<(bool, bool, int)>();
        for (var i = 0; i < Writes; i++)
        {
            var note = $"note {i} {Guid.NewGuid():N}";
            var query = context.Database.SqlQuery<ReadBack>(
                $"SELECT EXISTS (SELECT 1 FROM replay_rows WHERE note = {note}) AS \"Seen\", pg_is_in_recovery() AS \"OnStandby\", inet_server_port() AS \"Port\"");
            ReadBack row;
            if (async)
            {
                await context.Database.ExecuteSqlAsync($"INSERT INTO replay_rows (note) VALUES ({note})");
                row = await query.SingleAsync();
            }
            else
            {
                context.Database.ExecuteSql($"INSERT INTO replay_rows (note) VALUES ({note})");
                row = query.Single();
            }

            reads.Add((row.Seen, row.OnStandby, row.Port));
        }

        return reads;
    }

    /// <summary>
    /// A cluster whose only replica is the synchronous standby, probed once at start (which says its WAL receiver's name) and
    /// then rarely, so that what a read after a write knows of it comes from the captures; as <paramref name="role"/> when given.
    /// </summary>
    private async Task<TestCluster> CreateClusterAsync(string? role)
        => await TestCluster.CreateAsync(
            _servers,
            options =>
            {
                foreach (var other in options.Replicas.Where(r => r.Name != Synchronous.Name).ToList())
                {
                    options.Replicas.Remove(other);
                }

                options.HealthCheckInterval = TimeSpan.FromSeconds(30);
                if (role is not null)
                {
                    options.Primary = AsRole(options.Primary!, role);
                    options.Replicas[0].ConnectionString = AsRole(options.Replicas[0].ConnectionString!, role);
                }
            });

    /// <summary>The connection string as <paramref name="role"/> (no grant but on the table: no pg_read_all_stats).</summary>
    private static string AsRole(string connectionString, string role)
        => new NpgsqlConnectionStringBuilder(connectionString) { Username = role, Password = PlainPassword }.ConnectionString;

    private sealed record ReadBack(bool Seen, bool OnStandby, int Port);

    /// <summary>The consistency counters of one cluster, from now on.</summary>
    internal sealed class Counters : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<string, long> _counts = new();

        public Counters(string cluster)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == EfReplicaDiagnostics.MeterName && instrument.Name.StartsWith("efreplica.consistency.", StringComparison.Ordinal))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == EfReplicaDiagnostics.ClusterTag && Equals(tag.Value, cluster))
                    {
                        _counts.AddOrUpdate(instrument.Name, value, (_, old) => old + value);
                    }
                }
            });
            _listener.Start();
        }

        public long Captures => _counts.GetValueOrDefault(EfReplicaDiagnostics.PositionCapturesCounterName);

        public long ReplayChecks => _counts.GetValueOrDefault(EfReplicaDiagnostics.ReplayChecksCounterName);

        public long Reports => _counts.GetValueOrDefault(EfReplicaDiagnostics.StandbyReplayReportsCounterName);

        public void Dispose() => _listener.Dispose();
    }
}
