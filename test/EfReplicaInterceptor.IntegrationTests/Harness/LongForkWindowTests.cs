using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Harness;

/// <summary>
/// PostgreSQL itself, no library: under synchronous replication a committed transaction can be visible on a standby while
/// the primary's new snapshots do not include it yet ("Long Fork"), and the SQL functions the library's Long Fork wait relies
/// on tell that window apart. A primary with <c>synchronous_standby_names</c> naming one standby and
/// <c>synchronous_commit = remote_apply</c>, and a second, asynchronous standby: with replay paused on the synchronous one,
/// a commit waits for its acknowledgement (the backend has flushed its commit record, so the asynchronous standby receives
/// and replays it, but it has not left the primary's proc array). Found here: <c>pg_snapshot_xip(pg_current_snapshot())</c>
/// alone misses the waiting xid while no later transaction has completed (it is at or above the snapshot's xmax, which is
/// the latest completed xid + 1), so the library takes xmax too. These tests fail if PostgreSQL behaves otherwise.
/// </summary>
[NonParallelizable]
public sealed class LongForkWindowTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private PostgresReplicaSet _servers = null!;

    private PostgresServer Synchronous => _servers.Standbys[0];

    private PostgresServer Asynchronous => _servers.Standbys[1];

    [OneTimeSetUp]
    public async Task StartServers() => _servers = await SynchronousReplicaSet.StartAsync("CREATE TABLE fork (id int PRIMARY KEY, value int NOT NULL); INSERT INTO fork VALUES (1, 0)", Bound);

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [Test]
    public async Task A_commit_waiting_for_the_synchronous_standby_is_visible_on_the_asynchronous_one_but_in_progress_on_the_primary()
    {
        await Synchronous.PauseReplayAsync();
        await using var writer = new NpgsqlConnection(_servers.Primary.ConnectionString);
        await writer.OpenAsync();
        await using (var begin = new NpgsqlCommand("BEGIN; UPDATE fork SET value = value + 1 WHERE id = 1", writer))
        {
            await begin.ExecuteNonQueryAsync();
        }

        long xid;
        await using (var current = new NpgsqlCommand("SELECT pg_current_xact_id()::text::bigint", writer))
        {
            xid = (long)(await current.ExecuteScalarAsync())!;
        }

        var before = await _servers.Primary.ScalarAsync<int>("SELECT value FROM fork WHERE id = 1");
        await using var commitCommand = new NpgsqlCommand("COMMIT", writer);
        var commit = commitCommand.ExecuteNonQueryAsync();
        try
        {
            // The asynchronous standby shows the commit...
            await Poll.UntilAsync(
                async () => await Asynchronous.ScalarAsync<int>("SELECT value FROM fork WHERE id = 1") == before + 1,
                Bound,
                "the asynchronous standby to show the commit");

            // ...while the commit still waits for the synchronous standby, and the primary's new snapshots do not include it.
            Assert.That(commit.IsCompleted, Is.False, "COMMIT returned although the synchronous standby's replay is paused");
            var onPrimary = await PrimaryViewAsync(xid);
            var onStandby = await StandbyViewAsync(Asynchronous, xid);
            TestContext.Out.WriteLine($"primary: value {onPrimary.Value}, xid in its snapshot's xip {onPrimary.InSnapshot}, at or above its xmax {onPrimary.AtOrAboveXmax}, pg_xact_status '{onPrimary.Status}', commit timestamp set {onPrimary.CommitTimestampSet}, a backend_xid {onPrimary.BackendXid}");
            TestContext.Out.WriteLine($"asynchronous standby: pg_xact_status '{onStandby.Status}', its own snapshot's xip empty {onStandby.XipEmpty}, xid below its xmax {onStandby.BelowXmax}");
            Assert.Multiple(() =>
            {
                Assert.That(onPrimary.Value, Is.EqualTo(before), "the primary's new snapshot shows the commit");
                Assert.That(onPrimary.Visible, Is.False, "pg_visible_in_snapshot(xid, pg_current_snapshot()) on the primary");
                Assert.That(onPrimary.InSnapshot || onPrimary.AtOrAboveXmax, Is.True, "the xid is neither in the primary's snapshot's xip nor at or above its xmax");
                Assert.That(onPrimary.BackendXid, Is.True, "the xid is not a backend_xid of pg_stat_activity on the primary");
                Assert.That(onPrimary.Status, Is.EqualTo("in progress"), "pg_xact_status on the primary");
                Assert.That(onPrimary.CommitTimestampSet, Is.True, "pg_xact_commit_timestamp on the primary is not set while the commit waits");
                Assert.That(onStandby.Status, Is.EqualTo("committed"), "pg_xact_status on the asynchronous standby");
                Assert.That(onStandby.BelowXmax, Is.True, "a committed xid is below the standby's snapshot xmax");
            });

            // pg_snapshot_xip lists only xids below the snapshot's xmax (the latest completed xid + 1): the waiting commit is
            // in it only once a later transaction completed. One that does not wait for the standby (SET LOCAL
            // synchronous_commit = local) moves xmax past it.
            await _servers.Primary.ExecuteAsync("BEGIN; SET LOCAL synchronous_commit = local; CREATE TEMP TABLE later (id int); COMMIT");
            var later = await PrimaryViewAsync(xid);
            TestContext.Out.WriteLine($"primary after a later local commit: xid in xip {later.InSnapshot}, at or above xmax {later.AtOrAboveXmax}, visible {later.Visible}");
            Assert.Multiple(() =>
            {
                Assert.That(later.InSnapshot, Is.True, "after a later commit the waiting xid is in pg_snapshot_xip(pg_current_snapshot())");
                Assert.That(later.Visible, Is.False);
                Assert.That(later.Value, Is.EqualTo(before));
            });
        }
        finally
        {
            await Synchronous.ResumeReplayAsync();
            await commit.WaitAsync(Bound);
        }

        // Once the synchronous standby applied it, the commit returns and the primary shows it.
        var after = await PrimaryViewAsync(xid);
        Assert.Multiple(() =>
        {
            Assert.That(after.Value, Is.EqualTo(before + 1));
            Assert.That(after.Visible, Is.True);
            Assert.That(after.Status, Is.EqualTo("committed"));
        });
    }

    [Test]
    public async Task An_xid_the_standby_has_not_seen_yet_is_above_its_snapshot_xmax_so_pg_xact_status_is_never_asked_for_it()
    {
        // pg_xact_status raises an error for an xid beyond the server's next xid: the library asks a standby only for xids
        // below its snapshot's xmax. An xid the primary assigned but the standby has not replayed any record of yet:
        await Asynchronous.PauseReplayAsync();
        try
        {
            await using var writer = new NpgsqlConnection(_servers.Primary.ConnectionString);
            await writer.OpenAsync();
            await using var begin = new NpgsqlCommand("BEGIN; SELECT pg_current_xact_id()::text::bigint", writer);
            var xid = (long)(await begin.ExecuteScalarAsync())!;
            var below = await Asynchronous.ScalarAsync<bool>($"SELECT '{xid}'::xid8 < pg_snapshot_xmax(pg_current_snapshot())");
            var error = Assert.ThrowsAsync<PostgresException>(() => Asynchronous.ScalarAsync<string>($"SELECT pg_xact_status('{xid}'::xid8)"));
            TestContext.Out.WriteLine($"below xmax {below}; pg_xact_status: {error?.SqlState} {error?.MessageText}");
            Assert.That(below, Is.False);
            await using var rollback = new NpgsqlCommand("ROLLBACK", writer);
            await rollback.ExecuteNonQueryAsync();
        }
        finally
        {
            await Asynchronous.ResumeReplayAsync();
        }
    }

    private async Task<PrimaryView> PrimaryViewAsync(long xid)
    {
        await using var connection = new NpgsqlConnection(_servers.Primary.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT (SELECT value FROM fork WHERE id = 1), "
            + "@xid::text::xid8 IN (SELECT pg_snapshot_xip(pg_current_snapshot())), "
            + "@xid::text::xid8 >= pg_snapshot_xmax(pg_current_snapshot()), "
            + "pg_visible_in_snapshot(@xid::text::xid8, pg_current_snapshot()), "
            + "pg_xact_status(@xid::text::xid8), pg_xact_commit_timestamp(@xid::text::xid) IS NOT NULL, "
            + "EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_xid = @xid::text::xid)",
            connection);
        command.Parameters.AddWithValue("xid", xid);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new(reader.GetInt32(0), reader.GetBoolean(1), reader.GetBoolean(2), reader.GetBoolean(3), reader.GetString(4), reader.GetBoolean(5), reader.GetBoolean(6));
    }

    private static async Task<(string Status, bool XipEmpty, bool BelowXmax)> StandbyViewAsync(PostgresServer standby, long xid)
    {
        await using var connection = new NpgsqlConnection(standby.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT pg_xact_status(@xid::text::xid8), NOT EXISTS (SELECT pg_snapshot_xip(pg_current_snapshot())), "
            + "@xid::text::xid8 < pg_snapshot_xmax(pg_current_snapshot())",
            connection);
        command.Parameters.AddWithValue("xid", xid);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetString(0), reader.GetBoolean(1), reader.GetBoolean(2));
    }

    private readonly record struct PrimaryView(int Value, bool InSnapshot, bool AtOrAboveXmax, bool Visible, string Status, bool CommitTimestampSet, bool BackendXid);
}
