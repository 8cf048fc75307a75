using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Support;

/// <summary>
/// A primary with two standbys and <c>track_commit_timestamp = on</c> (unless asked otherwise): the first standby synchronous
/// (<c>synchronous_standby_names</c>, <c>synchronous_commit = remote_apply</c>), the second asynchronous. Ignores the test
/// on external servers (the primary's configuration is changed).
/// </summary>
public static class SynchronousReplicaSet
{
    /// <summary>
    /// Starts the set, runs <paramref name="schemaSql"/> on the primary, waits until both standbys replayed it and the first
    /// is synchronous. <paramref name="commitTimestamps"/>: <c>track_commit_timestamp</c> on (the default) or off.
    /// </summary>
    public static async Task<PostgresReplicaSet> StartAsync(string schemaSql, TimeSpan bound, bool commitTimestamps = true)
    {
        var options = new PostgresReplicaSetOptions();
        options.ExtraConfiguration.Add($"track_commit_timestamp = {(commitTimestamps ? "on" : "off")}");
        var servers = await PostgresReplicaSet.StartAsync(2, options);
        if (servers.IsExternal)
        {
            await servers.DisposeAsync();
            Assert.Ignore("Needs servers started by the tests (synchronous replication is configured on the primary).");
        }

        var synchronous = servers.Standbys[0];
        await servers.Primary.ExecuteAsync(schemaSql);
        await servers.WaitForReplayAsync(synchronous);
        await servers.WaitForReplayAsync(servers.Standbys[1]);
        await servers.Primary.ExecuteAsync($"ALTER SYSTEM SET synchronous_standby_names = '{synchronous.Name}'");
        await servers.Primary.ExecuteAsync("ALTER SYSTEM SET synchronous_commit = remote_apply");
        await servers.Primary.ExecuteAsync("SELECT pg_reload_conf()");
        await Poll.UntilAsync(
            async () => await servers.Primary.ScalarAsync<string>($"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{synchronous.Name}'") == "sync"
                && await servers.Primary.ScalarAsync<string>("SELECT setting FROM pg_settings WHERE name = 'synchronous_commit'") == "remote_apply",
            bound,
            "the first standby to be synchronous (remote_apply)");
        return servers;
    }
}
