using EfReplicaInterceptor.TestSupport;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Containers;

/// <summary>
/// Server sets for the tests only containers make possible. They run when the suite is asked for the container backend
/// (<c>EFREPLICA_TEST_BACKEND=containers</c>, as <c>.ci/run</c> does once Docker is up) and are skipped, saying why,
/// on a run with local servers, so a machine without Docker still passes the suite.
/// </summary>
public static class ContainerSets
{
    /// <summary>True when this run asked for the container backend.</summary>
    public static bool Requested =>
        string.Equals(Environment.GetEnvironmentVariable(PostgresReplicaSet.BackendEnvironmentVariable)?.Trim(), "containers", StringComparison.OrdinalIgnoreCase);

    /// <summary>Skips the calling test unless the container backend was asked for.</summary>
    public static void RequireContainerBackend()
    {
        if (!Requested)
        {
            Assert.Ignore($"Container-only test: run the suite with {PostgresReplicaSet.BackendEnvironmentVariable}=containers (needs a Docker engine and the image from build/postgres-image.sh).");
        }
    }

    /// <summary>A primary and <paramref name="standbys"/> standbys in containers.</summary>
    public static async Task<PostgresReplicaSet> StartAsync(int standbys = 1)
    {
        RequireContainerBackend();
        return await PostgresReplicaSet.StartAsync(standbys, new PostgresReplicaSetOptions { Backend = PostgresBackend.Containers });
    }

    /// <summary>As <see cref="StartAsync"/>, with the shop schema created and replayed by every standby (the shared wiring).</summary>
    public static async Task<PostgresReplicaSet> StartShopAsync(int standbys = 1)
    {
        RequireContainerBackend();
        return await ShopServers.StartAsync(standbys, new PostgresReplicaSetOptions { Backend = PostgresBackend.Containers });
    }
}

/// <summary>A fixture whose tests share one container primary + standby with the shop schema, started once for them.</summary>
public abstract class ContainerShopFixture
{
    protected PostgresReplicaSet Servers { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task StartServers() => Servers = await ContainerSets.StartShopAsync();

    [OneTimeTearDown]
    public async Task StopServers()
    {
        if (Servers is not null)
        {
            await Servers.DisposeAsync();
        }
    }
}
