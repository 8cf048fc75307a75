using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Clusters;

/// <summary>How a pooled tenant DbContext is bound to its tenant's primary per lease (no server needed: nothing connects).</summary>
public sealed class TenantDbContextTests
{
    [Test]
    public async Task Each_lease_gets_a_connection_of_its_own_tenants_primary_also_on_a_reused_instance()
    {
        await using var services = Services(poolSize: 1);
        var factory = services.GetRequiredService<EfReplicaTenantDbContextFactory<PlainContext>>();

        Guid instance;
        await using (var acme = factory.CreateDbContext("acme"))
        {
            instance = acme.ContextId.InstanceId;
            Assert.That(HostOf(acme), Is.EqualTo("127.0.0.1"));
        }

        await using (var globex = factory.CreateDbContext("globex"))
        {
            Assert.That(globex.ContextId.InstanceId, Is.EqualTo(instance), "the pool reused the instance");
            Assert.That(HostOf(globex), Is.EqualTo("127.0.0.3"));
        }
    }

    [Test]
    public async Task The_scope_resolves_its_tenant_for_the_context_and_the_factory()
    {
        await using var services = Services(poolSize: 4);
        await using var scope = services.CreateAsyncScope();
        scope.ServiceProvider.GetRequiredService<Tenant>().Id = "globex";

        var context = scope.ServiceProvider.GetRequiredService<PlainContext>();
        await using var another = scope.ServiceProvider.GetRequiredService<IDbContextFactory<PlainContext>>().CreateDbContext();

        Assert.That(HostOf(context), Is.EqualTo("127.0.0.3"));
        Assert.That(HostOf(another), Is.EqualTo("127.0.0.3"));
        Assert.That(another, Is.Not.SameAs(context));
    }

    [Test]
    public async Task A_context_the_full_pool_discards_lets_its_tenant_go_when_its_scope_ends()
    {
        await using var services = Services(poolSize: 1);
        var cache = services.GetRequiredService<EfReplicaInterceptor.Clusters.TenantClusterCache>();

        await using (var first = services.CreateAsyncScope())
        await using (var second = services.CreateAsyncScope())
        {
            first.ServiceProvider.GetRequiredService<Tenant>().Id = "acme";
            second.ServiceProvider.GetRequiredService<Tenant>().Id = "acme";
            _ = first.ServiceProvider.GetRequiredService<PlainContext>();
            _ = second.ServiceProvider.GetRequiredService<PlainContext>();
            Assert.That(cache.LeasesOf("acme"), Is.EqualTo(2));
        }

        Assert.That(cache.LeasesOf("acme"), Is.Zero, "the context kept by the pool and the one it discarded both let go");
    }

    [Test]
    public async Task A_discarded_or_leaked_context_from_the_factory_lets_its_tenant_go_once_collected()
    {
        await using var services = Services(poolSize: 1);
        var cache = services.GetRequiredService<EfReplicaInterceptor.Clusters.TenantClusterCache>();
        LeaseTwiceAndLeakOne(services.GetRequiredService<EfReplicaTenantDbContextFactory<PlainContext>>());
        Assert.That(cache.LeasesOf("acme"), Is.EqualTo(2), "the discarded and the leaked context still hold the tenant");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        cache.Sweep();

        Assert.That(cache.LeasesOf("acme"), Is.Zero);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void LeaseTwiceAndLeakOne(EfReplicaTenantDbContextFactory<PlainContext> factory)
    {
        var kept = factory.CreateDbContext("acme");
        var discarded = factory.CreateDbContext("acme");
        _ = factory.CreateDbContext("acme"); // never disposed
        kept.Dispose();
        discarded.Dispose(); // the pool (size 1) is full: EF disposes it without resetting it
    }

    [Test]
    public async Task A_lease_that_is_not_bound_to_a_tenant_cannot_create_a_connection()
    {
        await using var services = Services(poolSize: 1);
        await using var context = services.GetRequiredService<EfReplicaTenantDbContextFactory<PlainContext>>().LeaseUnbound();

        var exception = Assert.ThrowsAsync<EfReplicaTenantException>(() => context.Database.ExecuteSqlRawAsync("SELECT 1"));

        Assert.That(exception!.Message, Does.StartWith("This DbContext lease is not bound to a tenant"));
    }

    [Test]
    public async Task Without_a_resolver_the_context_cannot_be_leased()
    {
        await using var services = Services(poolSize: 1, withResolver: false);
        await using var scope = services.CreateAsyncScope();

        var exception = Assert.Throws<InvalidOperationException>(() => scope.ServiceProvider.GetRequiredService<PlainContext>());

        Assert.That(exception!.Message, Does.StartWith("No IEfReplicaTenantResolver is registered"));
    }

    [Test]
    public void Tenant_contexts_need_the_tenants_registered()
    {
        using var services = new ServiceCollection().AddEfReplicaTenantDbContext<PlainContext>().BuildServiceProvider();

        var exception = Assert.Throws<InvalidOperationException>(() => services.GetRequiredService<EfReplicaTenantDbContextFactory<PlainContext>>());

        Assert.That(exception!.Message, Does.StartWith("Call services.AddEfReplicaTenants(...)"));
    }

    [Test]
    public void A_context_type_bound_to_an_unknown_cluster_name_says_so()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:Clusters:orders:Primary"] = ClusterConfigurationTests.OrdersPrimary,
        }).Build();
        using var services = new ServiceCollection()
            .AddEfReplicaClusters(configuration.GetSection("EfReplica"))
            .AddDbContext<PlainContext>((sp, options) => options.UseEfReplicaCluster(sp, "Orders"))
            .BuildServiceProvider();

        var exception = Assert.Throws<InvalidOperationException>(() => services.GetRequiredService<PlainContext>());

        Assert.That(exception!.Message, Does.StartWith("No EfReplica cluster named 'Orders' is registered"));
    }

    private static string? HostOf(DbContext context) => new NpgsqlConnectionStringBuilder(context.Database.GetDbConnection().ConnectionString).Host;

    private static ServiceProvider Services(int poolSize, bool withResolver = true)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:HealthCheckTimeout"] = "00:00:00.200",
            ["EfReplica:Tenants:acme:Primary"] = ClusterConfigurationTests.OrdersPrimary,
            ["EfReplica:Tenants:globex:Primary"] = ClusterConfigurationTests.AnalyticsPrimary,
        }).Build();
        var services = new ServiceCollection().AddEfReplicaTenants(configuration.GetSection("EfReplica"));
        if (withResolver)
        {
            services.AddScoped<Tenant>().AddScoped<IEfReplicaTenantResolver>(sp => sp.GetRequiredService<Tenant>());
        }

        return services.AddEfReplicaTenantDbContext<PlainContext>(poolSize: poolSize).BuildServiceProvider();
    }

    private sealed class Tenant : IEfReplicaTenantResolver
    {
        public string? Id { get; set; }

        public string? ResolveTenant() => Id;
    }
}

public sealed class PlainContext(DbContextOptions<PlainContext> options) : DbContext(options);
