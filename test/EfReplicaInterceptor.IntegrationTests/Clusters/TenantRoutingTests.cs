using System.Collections.Concurrent;
using EfReplicaInterceptor.Clusters;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.IntegrationTests.Clusters;

/// <summary>
/// One cluster per tenant behind one pooled DbContext type: every command of a lease (EF's own connection included) lands
/// on the servers of the scope's tenant, as the servers report it, also when a pooled context served the other tenant just
/// before; an unknown tenant is refused before any server sees anything.
/// </summary>
[NonParallelizable] // the meter listener sees every cluster in the process
public sealed class TenantRoutingTests
{
    private const string Acme = "acme";
    private const string Globex = "globex";

    [SetUp]
    public void RequireServers() => ClusterServers.RequireTwoClusters();

    [Test]
    public async Task Concurrent_scopes_of_two_tenants_on_a_pooled_context_never_cross()
    {
        const int Workers = 16;
        const int CommandsWanted = 5_000;
        const int CommandsPerScope = 5;
        var clusterTags = new ConcurrentBag<string>();
        using var listener = NamedClusterTests.ListenToCommandCounter(clusterTags);
        using var recorder = new RoutingRecorder();
        using var host = BuildHost(recorder, poolSize: 4);
        await host.StartAsync();

        var servers = new Dictionary<string, PostgresReplicaSet> { [Acme] = ClusterServers.A, [Globex] = ClusterServers.B };
        var landed = new ConcurrentDictionary<(string Tenant, string Where), int>();
        var tenantsPerInstance = new ConcurrentDictionary<Guid, ConcurrentDictionary<string, byte>>();
        var writes = new ConcurrentDictionary<string, int>();
        var commands = 0;
        var scopes = 0;

        void Record(string tenant, int port, bool? inRecovery = null)
        {
            Interlocked.Increment(ref commands);
            var own = servers[tenant];
            var other = servers[tenant == Acme ? Globex : Acme];
            var where = port == own.Primary.Port && inRecovery != true ? "own primary"
                : port == own.Standby.Port && inRecovery != false ? "own standby"
                : port == other.Primary.Port || port == other.Standby.Port ? "OTHER TENANT"
                : "unknown server";
            landed.AddOrUpdate((tenant, where), 1, (_, count) => count + 1);
        }

        async Task Work(int worker)
        {
            for (var round = 0; Volatile.Read(ref commands) < CommandsWanted; round++)
            {
                var tenant = (worker + round) % 2 == 0 ? Acme : Globex;
                var async = round % 3 != 0;
                await using var scope = host.Services.CreateAsyncScope();
                scope.ServiceProvider.GetRequiredService<ScopeTenant>().Id = tenant;
                var context = scope.ServiceProvider.GetRequiredService<TenantContext>();
                tenantsPerInstance.GetOrAdd(context.ContextId.InstanceId, _ => new()).TryAdd(tenant, 0);

                for (var i = 0; i < 3; i++)
                {
                    var side = async ? await context.WhereAmI().SingleAsync() : context.WhereAmI().Single();
                    Record(tenant, side.Port, side.InRecovery);
                }

                var person = new Person { Name = $"{tenant}-{Guid.NewGuid():N}" };
                context.People.Add(person);
                _ = async ? await context.SaveChangesAsync() : context.SaveChanges();
                Record(tenant, person.WrittenOnPort, inRecovery: false);
                writes.AddOrUpdate(tenant, 1, (_, count) => count + 1);

                var afterWrite = async ? await context.WhereAmI().SingleAsync() : context.WhereAmI().Single();
                Record(tenant, afterWrite.Port, afterWrite.InRecovery);
                Interlocked.Increment(ref scopes);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Workers).Select(worker => Task.Run(() => Work(worker))));

        var summary = string.Join(", ", landed.OrderBy(p => p.Key.Tenant).ThenBy(p => p.Key.Where).Select(p => $"{p.Key.Tenant} on {p.Key.Where}: {p.Value}"));
        TestContext.Out.WriteLine($"{commands} commands in {scopes} scopes: {summary}");
        Assert.That(commands, Is.GreaterThanOrEqualTo(CommandsWanted));
        Assert.That(scopes * CommandsPerScope, Is.EqualTo(commands));
        Assert.That(landed.Keys.Select(k => k.Where).Distinct(), Is.SubsetOf(new[] { "own primary", "own standby" }), summary);
        Assert.That(landed.Where(p => p.Key.Where == "own standby").Select(p => p.Key.Tenant), Is.EquivalentTo(new[] { Acme, Globex }), "both tenants' reads used their own standby");
        Assert.That(tenantsPerInstance.Values.Count(tenants => tenants.Count == 2), Is.GreaterThan(0), "pooled context instances served both tenants");

        // From the servers' side: each tenant's database holds its own rows and none of the other's.
        Assert.That(await CountLikeAsync(ClusterServers.A.Primary, Acme), Is.EqualTo(writes[Acme]));
        Assert.That(await CountLikeAsync(ClusterServers.A.Primary, Globex), Is.Zero);
        Assert.That(await CountLikeAsync(ClusterServers.B.Primary, Globex), Is.EqualTo(writes[Globex]));
        Assert.That(await CountLikeAsync(ClusterServers.B.Primary, Acme), Is.Zero);

        var cache = host.Services.GetRequiredService<TenantClusterCache>();
        Assert.That((cache.LeasesOf(Acme), cache.LeasesOf(Globex)), Is.EqualTo((0, 0)), "every lease let go of its tenant's cluster");
        Assert.That(cache.Created, Is.EqualTo(2), "each tenant's cluster was created once");
        Assert.That(clusterTags.Distinct(), Is.EquivalentTo(new[] { Acme, Globex }), "metrics name clusters by tenant id");
        Assert.That(recorder.EverythingLogged, Has.None.Contains("efreplica-test-password"));
    }

    [Test]
    public async Task An_unknown_or_missing_tenant_is_refused_before_any_server_sees_a_command([Values(false, true)] bool factory)
    {
        using var recorder = new RoutingRecorder();
        using var host = BuildHost(recorder, poolSize: 2);
        await host.StartAsync();
        var marker = $"unknown-tenant-{Guid.NewGuid():N}";

        foreach (var tenant in new[] { "initech", null, " " })
        {
            await using var scope = host.Services.CreateAsyncScope();
            scope.ServiceProvider.GetRequiredService<ScopeTenant>().Id = tenant;

            var exception = Assert.Throws<EfReplicaTenantException>(() =>
            {
                var context = factory
                    ? scope.ServiceProvider.GetRequiredService<IDbContextFactory<TenantContext>>().CreateDbContext()
                    : scope.ServiceProvider.GetRequiredService<TenantContext>();
                _ = context.People.TagWith(marker).Count();
            });

            Assert.That(exception!.TenantId, Is.EqualTo(tenant == "initech" ? "initech" : null));
            Assert.That(exception.Message, Does.Contain(tenant == "initech" ? "Tenant 'initech' is unknown" : "No tenant was resolved"));
        }

        // Positive control: the same tagged query of a known tenant is in its primary's log.
        var control = $"known-tenant-{Guid.NewGuid():N}";
        await using (var scope = host.Services.CreateAsyncScope())
        {
            scope.ServiceProvider.GetRequiredService<ScopeTenant>().Id = Acme;
            _ = await scope.ServiceProvider.GetRequiredService<TenantContext>().People.TagWith(control).UsePrimary().CountAsync();
        }

        Assert.That(ClusterServers.ServerLogContains(ClusterServers.A.Primary, control), Is.True, "the servers log the statements they receive");
        Assert.That(ClusterServers.AllServers.Where(server => ClusterServers.ServerLogContains(server, marker)), Is.Empty,
            "no server received the refused tenant's command");
        Assert.That(host.Services.GetRequiredService<TenantClusterCache>().IsOpen("initech"), Is.False, "an unknown tenant leaves nothing behind");
        Assert.That(recorder.AllEvents.Where(e => e.EventId == 3002).Select(e => e.Message), Has.Some.Contains("'initech'"));
    }

    [Test]
    public async Task A_pooled_context_leased_without_its_tenant_cannot_reach_the_previous_tenants_servers()
    {
        using var recorder = new RoutingRecorder();
        using var host = BuildHost(recorder, poolSize: 1);
        await host.StartAsync();
        var factory = host.Services.GetRequiredService<EfReplicaTenantDbContextFactory<TenantContext>>();
        var marker = $"unbound-lease-{Guid.NewGuid():N}";

        Guid instance;
        await using (var context = factory.CreateDbContext(Acme))
        {
            instance = context.ContextId.InstanceId;
            Assert.That((await context.WhereAmI().UsePrimary().SingleAsync()).Port, Is.EqualTo(ClusterServers.A.Primary.Port));
        }

        // The same pooled instance, leased without binding it (what a leak in the lease path would do): EF still holds the
        // connection acme's lease left behind, and the guard refuses to open it.
        await using (var context = factory.LeaseUnbound())
        {
            Assert.That(context.ContextId.InstanceId, Is.EqualTo(instance), "the pool handed out the instance acme used");
            var exception = Assert.ThrowsAsync<EfReplicaTenantException>(() => context.People.TagWith(marker).CountAsync());
            Assert.That(exception!.Message, Does.Contain("not bound to a tenant"));
        }

        // A lease that swaps its connection string for another tenant's is stopped before the connection opens.
        await using (var context = factory.CreateDbContext(Acme))
        {
            context.Database.SetConnectionString(ClusterServers.B.Primary.ConnectionString);
            var exception = Assert.Throws<EfReplicaTenantException>(() => _ = context.People.TagWith(marker).Count());
            Assert.That(exception!.TenantId, Is.EqualTo(Acme));
        }

        Assert.That(ClusterServers.AllServers.Where(server => ClusterServers.ServerLogContains(server, marker)), Is.Empty, "no server received the guarded commands");
        Assert.That(recorder.AllEvents.Count(e => e.EventId == 3003), Is.EqualTo(2), "each stopped command is logged as an isolation violation");
        Assert.That(host.Services.GetRequiredService<TenantClusterCache>().LeasesOf(Acme), Is.Zero);
    }

    internal static IHost BuildHost(RoutingRecorder recorder, int poolSize, Action<HostApplicationBuilder>? configure = null, Dictionary<string, string?>? settings = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings ?? new Dictionary<string, string?>
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:00.500",
            // These tests prove isolation, not deadlines: with the derived one (interval + probe timeout, 2.5 s) a read
            // of the 16-worker test was abandoned as "the primary did not answer" on a machine with both cores busy.
            ["EfReplica:Failover:ReadDeadline"] = "00:00:30",
            ["EfReplica:Tenants:acme:Primary"] = NamedClusterTests.Pooled(ClusterServers.A.Primary.ConnectionString, "efreplica-acme"),
            ["EfReplica:Tenants:acme:Replicas:0:Name"] = "acme-standby",
            ["EfReplica:Tenants:acme:Replicas:0:ConnectionString"] = NamedClusterTests.Pooled(ClusterServers.A.Standby.ConnectionString, "efreplica-acme"),
            ["EfReplica:Tenants:globex:Primary"] = NamedClusterTests.Pooled(ClusterServers.B.Primary.ConnectionString, "efreplica-globex"),
            ["EfReplica:Tenants:globex:Replicas:0:Name"] = "globex-standby",
            ["EfReplica:Tenants:globex:Replicas:0:ConnectionString"] = NamedClusterTests.Pooled(ClusterServers.B.Standby.ConnectionString, "efreplica-globex"),
        });
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Debug).AddProvider(recorder);
        builder.Services.AddEfReplicaTenants(builder.Configuration.GetSection("EfReplica"), TestCluster.MapTypes);
        builder.Services.AddScoped<ScopeTenant>();
        builder.Services.AddScoped<IEfReplicaTenantResolver>(sp => sp.GetRequiredService<ScopeTenant>());
        builder.Services.AddEfReplicaTenantDbContext<TenantContext>(npgsql => npgsql.MapEnum<Mood>("mood"), poolSize: poolSize);
        configure?.Invoke(builder);
        return builder.Build();
    }

    private static async Task<long> CountLikeAsync(PostgresServer primary, string tenant)
        => await primary.ScalarAsync<long>($"SELECT count(*) FROM people WHERE name LIKE '{tenant}-%'");
}
