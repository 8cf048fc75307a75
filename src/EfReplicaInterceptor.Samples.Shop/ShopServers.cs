using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.Samples.Shop;

/// <summary>Server sets with the shop schema (<see cref="ShopDbContext.Schema"/>).</summary>
public static class ShopServers
{
    /// <summary>
    /// A primary and <paramref name="standbys"/> streaming standbys, the schema created on the primary and replayed by every
    /// standby. The set is disposed again when the schema cannot be created.
    /// </summary>
    public static async Task<PostgresReplicaSet> StartAsync(int standbys = 1, PostgresReplicaSetOptions? options = null, CancellationToken ct = default)
    {
        var servers = await PostgresReplicaSet.StartAsync(standbys, options, ct);
        try
        {
            await servers.Primary.ExecuteAsync(ShopDbContext.Schema, ct);
            foreach (var standby in servers.Standbys)
            {
                await servers.WaitForReplayAsync(standby, ct: ct);
            }

            return servers;
        }
        catch
        {
            await servers.DisposeAsync();
            throw;
        }
    }
}
