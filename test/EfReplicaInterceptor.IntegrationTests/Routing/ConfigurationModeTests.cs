using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>
/// Every way of configuring EF works: a connection string or a data source, AddDbContext, AddDbContextPool,
/// AddDbContextFactory and no DI at all; data-source features (a mapped enum) work on replica reads.
/// </summary>
public sealed class ConfigurationModeTests : RoutingTestBase
{
    public enum Registration
    {
        AddDbContext,
        AddDbContextPool,
        AddDbContextFactory,
    }

    [Test]
    public async Task Mapped_enum_is_read_from_the_replica_and_written_to_the_primary(
        [Values] ConnectionMode mode, [Values(false, true)] bool async)
    {
        await using (var context = Cluster.NewContext(mode))
        {
            var query = context.People.Where(p => p.Mood == Mood.Sad).OrderBy(p => p.Id)
                .Select(p => new { p.Mood, Side = new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery()) });
            var row = async ? await query.FirstAsync() : query.First();

            Assert.That(row.Mood, Is.EqualTo(Mood.Sad));
            AssertOnReplica(row.Side);
        }

        await using (var context = Cluster.NewContext(mode))
        {
            var person = new Person { Name = UniqueName("enum"), Mood = Mood.Meh };
            context.People.Add(person);
            _ = async ? await context.SaveChangesAsync() : context.SaveChanges();

            Assert.That(person.WrittenOnPort, Is.EqualTo(Servers.Primary.Port));
            Assert.That(await Servers.Primary.ScalarAsync<string>($"SELECT mood::text FROM people WHERE name = '{person.Name}'"), Is.EqualTo("meh"));
        }
    }

    [Test]
    public async Task Registered_with_dependency_injection_and_appsettings([Values] Registration registration, [Values(false, true)] bool async)
    {
        var settings = new Dictionary<string, string?>
        {
            ["EfReplica:Primary"] = TestCluster.WithPool(Servers.Primary.ConnectionString, 10),
            ["EfReplica:Replicas:0:Name"] = "standby",
            ["EfReplica:Replicas:0:ConnectionString"] = TestCluster.WithPool(Servers.Standby.ConnectionString, 10),
            ["EfReplica:ReadYourWrites"] = "Primary",
        };
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddEfReplica(builder.Configuration.GetSection("EfReplica"), TestCluster.MapTypes);
        void Configure(IServiceProvider sp, DbContextOptionsBuilder options)
        {
            var cluster = sp.GetRequiredService<EfReplicaCluster>();
            options.UseNpgsql(cluster.PrimaryDataSource, npgsql => npgsql.MapEnum<Mood>("mood")).AddInterceptors(cluster.Interceptors);
        }

        switch (registration)
        {
            case Registration.AddDbContext:
                builder.Services.AddDbContext<ShopContext>(Configure);
                break;
            case Registration.AddDbContextPool:
                builder.Services.AddDbContextPool<ShopContext>(Configure, poolSize: 1);
                break;
            case Registration.AddDbContextFactory:
                builder.Services.AddDbContextFactory<ShopContext>(Configure);
                break;
        }

        using var host = builder.Build();
        await host.StartAsync();
        ShopContext? firstLease = null;
        for (var round = 0; round < 2; round++)
        {
            using var scope = host.Services.CreateScope();
            await using var context = registration == Registration.AddDbContextFactory
                ? await scope.ServiceProvider.GetRequiredService<IDbContextFactory<ShopContext>>().CreateDbContextAsync()
                : scope.ServiceProvider.GetRequiredService<ShopContext>();

            // Each lease starts clean: the write of the previous lease does not keep this one's reads on the primary.
            AssertOnReplica(await WhereAmI(context, async));
            var person = new Person { Name = UniqueName(registration.ToString()) };
            context.People.Add(person);
            _ = async ? await context.SaveChangesAsync() : context.SaveChanges();
            Assert.That(person.WrittenOnPort, Is.EqualTo(Servers.Primary.Port));
            AssertOnPrimary(await WhereAmI(context, async));

            if (registration == Registration.AddDbContextPool)
            {
                firstLease ??= context;
                Assert.That(context, Is.SameAs(firstLease), "the pool should hand out the same instance (pool size 1)");
            }
        }

        await host.StopAsync();
    }
}
