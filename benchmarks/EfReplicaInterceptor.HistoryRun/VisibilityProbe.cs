using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using Npgsql;

/// <summary>
/// Plain Npgsql, no library: can a standby show a commit before the primary does? Writers increment a counter on the
/// primary; readers read it on the standby, then at once on the primary, and count the times the primary returned less.
/// (PostgreSQL ships WAL once it is flushed, and the committing backend makes its transaction visible on the primary only
/// after that, so a standby can replay and show a commit the primary's new snapshots do not include yet.)
/// </summary>
internal static class VisibilityProbe
{
    public static async Task<int> RunAsync(TimeSpan duration, int writers, int readers, bool synchronousReplication, CancellationToken ct)
    {
        await using var servers = await PostgresReplicaSet.StartAsync(1, cancellationToken: ct);
        await servers.Primary.ExecuteAsync("CREATE TABLE probe (id int PRIMARY KEY, value bigint NOT NULL); INSERT INTO probe VALUES (1, 0)", ct);
        await servers.WaitForReplayAsync(servers.Standby, ct: ct);
        if (synchronousReplication)
        {
            // The standby read from is the synchronous one: a commit returns once it has applied it (remote_apply).
            await servers.Primary.ExecuteAsync($"ALTER SYSTEM SET synchronous_standby_names = '{servers.Standby.Name}'", ct);
            await servers.Primary.ExecuteAsync("ALTER SYSTEM SET synchronous_commit = remote_apply", ct);
            await servers.Primary.ExecuteAsync("SELECT pg_reload_conf()", ct);
            while (await servers.Primary.ScalarAsync<string>($"SELECT coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = '{servers.Standby.Name}'), '')", ct) != "sync")
            {
                await Task.Delay(20, ct);
            }
        }

        await using var primary = NpgsqlDataSource.Create(servers.Primary.ConnectionString);
        await using var standby = NpgsqlDataSource.Create(servers.Standby.ConnectionString);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        long pairs = 0, primaryBehind = 0, worstGap = 0;
        var clock = Stopwatch.StartNew();

        async Task Write()
        {
            await using var connection = await primary.OpenConnectionAsync(CancellationToken.None);
            await using var command = new NpgsqlCommand("UPDATE probe SET value = value + 1 WHERE id = 1", connection);
            while (!stop.IsCancellationRequested)
            {
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }
        }

        async Task Read()
        {
            await using var onStandby = await standby.OpenConnectionAsync(CancellationToken.None);
            await using var onPrimary = await primary.OpenConnectionAsync(CancellationToken.None);
            await using var fromStandby = new NpgsqlCommand("SELECT value FROM probe WHERE id = 1", onStandby);
            await using var fromPrimary = new NpgsqlCommand("SELECT value FROM probe WHERE id = 1", onPrimary);
            while (!stop.IsCancellationRequested)
            {
                var seen = (long)(await fromStandby.ExecuteScalarAsync(CancellationToken.None))!;
                var then = (long)(await fromPrimary.ExecuteScalarAsync(CancellationToken.None))!;
                Interlocked.Increment(ref pairs);
                if (then < seen)
                {
                    Interlocked.Increment(ref primaryBehind);
                    var gap = seen - then;
                    long worst;
                    while (gap > (worst = Interlocked.Read(ref worstGap)) && Interlocked.CompareExchange(ref worstGap, gap, worst) != worst)
                    {
                    }
                }
            }
        }

        var tasks = Enumerable.Range(0, writers).Select(_ => Task.Run(Write, CancellationToken.None))
            .Concat(Enumerable.Range(0, readers).Select(_ => Task.Run(Read, CancellationToken.None))).ToList();
        await Task.Delay(duration, ct);
        await stop.CancelAsync();
        await Task.WhenAll(tasks);
        var commits = await servers.Primary.ScalarAsync<long>("SELECT value FROM probe WHERE id = 1", ct);
        Console.WriteLine($"visibility probe: {clock.Elapsed.TotalSeconds:0.0} s, {writers} writers ({commits:N0} commits, {(synchronousReplication ? "synchronous replication, remote_apply" : "synchronous_commit on")}), {readers} readers: "
            + $"{primaryBehind:N0} of {pairs:N0} standby-then-primary read pairs saw the primary behind the standby (largest gap {worstGap} increments)");
        return 0;
    }
}
