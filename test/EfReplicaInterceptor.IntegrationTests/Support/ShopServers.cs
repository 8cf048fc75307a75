using System.Diagnostics;
using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Support;

/// <summary>Server sets with the shop schema, and waiting for a condition the library reaches by itself.</summary>
public static class ShopServers
{
    /// <summary>A primary and <paramref name="standbys"/> streaming standbys, the schema created and replayed by every standby.</summary>
    public static async Task<PostgresReplicaSet> StartAsync(int standbys = 1)
    {
        var servers = await PostgresReplicaSet.StartAsync(standbys);
        await servers.Primary.ExecuteAsync(ShopContext.Schema);
        foreach (var standby in servers.Standbys)
        {
            await servers.WaitForReplayAsync(standby);
        }

        return servers;
    }

    /// <summary>Polls <paramref name="condition"/> every 20 ms; fails the test if it is not met within <paramref name="timeout"/>.</summary>
    public static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"condition not met within {timeout}");
            }

            await Task.Delay(20);
        }
    }
}
