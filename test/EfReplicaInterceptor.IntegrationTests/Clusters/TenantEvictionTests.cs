using EfReplicaInterceptor.Clusters;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EfReplicaInterceptor.IntegrationTests.Clusters;

/// <summary>
/// A tenant provided at run time by the application's catalogue: its cluster is created on first use, closed after the
/// idle timeout (its server connections go away, as <c>pg_stat_activity</c> shows), kept while a lease holds it, and created
/// again on the next use.
/// </summary>
public sealed class TenantEvictionTests
{
    private const string Tenant = "hooli";
    private const string ApplicationName = "efreplica-evict";

    [SetUp]
    public void RequireServers() => ClusterServers.RequireTwoClusters();

    [Test]
    public async Task An_idle_tenant_cluster_is_closed_with_its_connections_and_recreated_on_next_use()
    {
        using var recorder = new RoutingRecorder();
        var catalog = new Catalog();
        using var host = TenantRoutingTests.BuildHost(recorder, poolSize: 2, builder => builder.Services.AddSingleton<IEfReplicaTenantCatalog>(catalog), new Dictionary<string, string?>
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:00.200",
            ["EfReplica:Tenancy:IdleTimeout"] = "00:00:01",
        });
        await host.StartAsync();
        var cache = host.Services.GetRequiredService<TenantClusterCache>();
        var set = ClusterServers.A;

        Assert.That(await UseTenantAsync(host), Is.EqualTo(set.Primary.Port));
        Assert.That(cache.IsOpen(Tenant), Is.True);
        Assert.That(catalog.Defaults?.HealthCheckInterval, Is.EqualTo(TimeSpan.FromMilliseconds(200)), "the catalogue received the shared defaults");
        Assert.That(await BackendsAsync(set.Primary), Is.GreaterThan(0), "the tenant's cluster holds connections to its primary");
        Assert.That(await BackendsAsync(set.Standby), Is.GreaterThan(0), "and to its standby (its monitor)");

        // Held by a lease, the cluster outlives the idle timeout.
        await using (var scope = host.Services.CreateAsyncScope())
        {
            scope.ServiceProvider.GetRequiredService<ScopeTenant>().Id = Tenant;
            var context = scope.ServiceProvider.GetRequiredService<TenantContext>();
            await Task.Delay(TimeSpan.FromSeconds(1.6));
            Assert.That(cache.IsOpen(Tenant), Is.True, "a leased tenant's cluster is not closed");
            Assert.That((await context.WhereAmI().UsePrimary().SingleAsync()).Port, Is.EqualTo(set.Primary.Port));
        }

        await WaitUntilAsync(() => Task.FromResult(!cache.IsOpen(Tenant)), "the idle cluster to close");
        await cache.WhenClosedAsync();
        await WaitUntilAsync(async () => await BackendsAsync(set.Primary) == 0 && await BackendsAsync(set.Standby) == 0, "the tenant's server connections to go away");
        Assert.That(cache.Closed, Is.EqualTo(1));
        Assert.That(recorder.AllEvents.Where(e => e.EventId == 3001).Select(e => e.Message), Has.Some.Contains($"'{Tenant}'"));

        Assert.That(await UseTenantAsync(host), Is.EqualTo(set.Primary.Port), "the tenant works again");
        Assert.That(cache.Created, Is.EqualTo(2), "its cluster was created again");
        Assert.That(catalog.Calls, Is.EqualTo(2), "the catalogue is asked once per creation");
        Assert.That(await BackendsAsync(set.Primary), Is.GreaterThan(0));
    }

    private static async Task<int> UseTenantAsync(IHost host)
    {
        await using var scope = host.Services.CreateAsyncScope();
        scope.ServiceProvider.GetRequiredService<ScopeTenant>().Id = Tenant;
        var context = scope.ServiceProvider.GetRequiredService<TenantContext>();
        _ = await context.WhereAmI().SingleAsync();
        return (await context.WhereAmI().UsePrimary().SingleAsync()).Port;
    }

    private static async Task<long> BackendsAsync(PostgresServer server)
        => await server.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{ApplicationName}'");

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for {what}.");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>The application's tenant table: knows "hooli", on cluster A.</summary>
    private sealed class Catalog : IEfReplicaTenantCatalog
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public EfReplicaOptions? Defaults { get; private set; }

        public bool TryConfigureTenant(string tenantId, EfReplicaOptions options)
        {
            Interlocked.Increment(ref _calls);
            if (!string.Equals(tenantId, Tenant, StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }

            Defaults = options;
            options.Primary = NamedClusterTests.Pooled(ClusterServers.A.Primary.ConnectionString, ApplicationName);
            options.Replicas.Add(new ReplicaEndpointOptions { Name = "hooli-standby", ConnectionString = NamedClusterTests.Pooled(ClusterServers.A.Standby.ConnectionString, ApplicationName) });
            return true;
        }
    }
}
