using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// Cascading replication, on real servers: the cluster's only replica streams from another standby (not from the primary)
/// that the cluster does not know, and both WAL receivers give the same application name. The primary's
/// <c>pg_stat_replication</c> has one row with that name, the upstream standby's (synchronous, <c>remote_apply</c>: at the
/// commit after every write), while the configured replica's replay is paused far behind. The row must not be credited to
/// the replica (its receiver's sender is the upstream standby's port, not the primary's): every read after a write asks the
/// replica, finds it behind and runs on the primary, and sees its write.
/// </summary>
[NonParallelizable]
public sealed class CascadingStandbyReplayTests
{
    private const int Writes = 10;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private PostgresReplicaSet _servers = null!;
    private PostgresServer _upstream = null!;
    private PostgresServer _cascaded = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        var options = new PostgresReplicaSetOptions();
        options.ExtraConfiguration.Add("full_page_writes = on"); // a base backup taken from a standby needs it (the harness turns it off)
        _servers = await PostgresReplicaSet.StartAsync(1, options);
        if (_servers.IsExternal || _servers.Backend != PostgresBackend.Local)
        {
            await _servers.DisposeAsync();
            Assert.Ignore("Needs local servers started by the tests (a standby of a standby, synchronous replication on the primary).");
        }

        _upstream = _servers.Standbys[0];
        await _servers.Primary.ExecuteAsync("CREATE TABLE cascade_rows (id bigserial PRIMARY KEY, note text NOT NULL)");
        await _servers.Primary.ExecuteAsync("CHECKPOINT");
        await _servers.WaitForReplayAsync(_upstream);
        await _upstream.ExecuteAsync("CHECKPOINT"); // a restartpoint after the checkpoint written with full_page_writes on
        _cascaded = await _servers.AddStandbyAsync(_upstream);

        // The cascaded standby's receiver takes its upstream's name (as with one cluster_name inherited through pg_basebackup).
        var conninfo = await _cascaded.ScalarAsync<string>("SELECT current_setting('primary_conninfo')");
        await _cascaded.ExecuteAsync($"ALTER SYSTEM SET primary_conninfo = '{conninfo.Replace("'", "''", StringComparison.Ordinal)} application_name={_upstream.Name}'");
        await _cascaded.ExecuteAsync("SELECT pg_reload_conf()");
        await Poll.UntilAsync(
            async () => await _cascaded.ScalarAsync<bool>(
                $"SELECT coalesce((SELECT status = 'streaming' AND conninfo LIKE '% application_name={_upstream.Name} %' FROM pg_stat_wal_receiver), false)"),
            Bound,
            "the cascaded standby's receiver to stream under its upstream's name");
        await _servers.WaitForReplayAsync(_cascaded);
        await _cascaded.ExecuteAsync("SELECT pg_wal_replay_pause()");

        await _servers.Primary.ExecuteAsync($"ALTER SYSTEM SET synchronous_standby_names = '{_upstream.Name}'");
        await _servers.Primary.ExecuteAsync("ALTER SYSTEM SET synchronous_commit = remote_apply");
        await _servers.Primary.ExecuteAsync("SELECT pg_reload_conf()");
        await Poll.UntilAsync(
            async () => await _servers.Primary.ScalarAsync<string>($"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{_upstream.Name}'") == "sync",
            Bound,
            "the upstream standby to be synchronous (remote_apply)");
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [Test]
    public async Task The_upstream_s_row_is_not_credited_to_a_replica_that_cascades_from_it()
    {
        // What the servers show: one row named as both receivers are, the upstream's; the replica's receiver is connected to
        // the upstream's port on 127.0.0.1; the replica's replay is paused.
        Assert.That(
            await _servers.Primary.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{_upstream.Name}'"),
            Is.EqualTo(1L));
        Assert.That(await _cascaded.ScalarAsync<string>("SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver"), Is.EqualTo($"127.0.0.1:{_upstream.Port}"));
        Assert.That(await _upstream.ScalarAsync<string>("SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver"), Is.EqualTo($"127.0.0.1:{_servers.Primary.Port}"));

        await using var cluster = await TestCluster.CreateAsync(
            _servers,
            options =>
            {
                foreach (var other in options.Replicas.Where(r => r.Name != _cascaded.Name).ToList())
                {
                    options.Replicas.Remove(other);
                }

                options.HealthCheckInterval = TimeSpan.FromSeconds(30);
            });
        using var counters = new StandbyReplayReportsTests.Counters(cluster.Cluster.Name);

        await using var context = cluster.NewContext();
        var reads = new List<(bool Seen, bool OnStandby)>();
        var upstreamAtCommit = 0;
        for (var i = 0; i < Writes; i++)
        {
            var note = $"note {i} {Guid.NewGuid():N}";
            await context.Database.ExecuteSqlAsync($"INSERT INTO cascade_rows (note) VALUES ({note})");
            var row = await context.Database.SqlQuery<ReadBack>(
                $"SELECT EXISTS (SELECT 1 FROM cascade_rows WHERE note = {note}) AS \"Seen\", pg_is_in_recovery() AS \"OnStandby\"").SingleAsync();
            reads.Add((row.Seen, row.OnStandby));
            upstreamAtCommit += await _upstream.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM cascade_rows WHERE note = '{note}')") ? 1 : 0;
        }

        TestContext.Out.WriteLine($"{Writes} write-then-read pairs: replay checks {counters.ReplayChecks}, standby replay reports {counters.Reports}, captures {counters.Captures}, on the standby {reads.Count(r => r.OnStandby)}");
        Assert.That(upstreamAtCommit, Is.EqualTo(Writes), "the upstream (synchronous, remote_apply) had replayed each write: its row was there to be miscredited");
        Assert.That(reads.Select(r => r.Seen), Is.All.True, "a read missed its own write");
        Assert.That(reads.Select(r => r.OnStandby), Is.All.False, "the paused replica is behind: every read ran on the primary");
        Assert.That(counters.Reports, Is.Zero, "the upstream's row is not the replica's");
        Assert.That(counters.ReplayChecks, Is.GreaterThanOrEqualTo(Writes), "every read after a write asked the replica");
    }

    private sealed record ReadBack(bool Seen, bool OnStandby);
}
