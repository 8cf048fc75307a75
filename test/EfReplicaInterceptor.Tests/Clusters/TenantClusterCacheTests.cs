using EfReplicaInterceptor.Clusters;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace EfReplicaInterceptor.Tests.Clusters;

/// <summary>Tenant clusters: found in configuration or the catalogue, created once, held by leases, closed when idle.</summary>
public sealed class TenantClusterCacheTests
{
    private const string AcmePrimary = ClusterConfigurationTests.OrdersPrimary;
    private const string HooliPrimary = ClusterConfigurationTests.AnalyticsPrimary;

    private readonly ManualTime _time = new();

    [Test]
    public async Task A_configured_tenant_is_created_once_and_shared_by_its_leases()
    {
        await using var cache = Cache(new() { ["EfReplica:Tenants:acme:Primary"] = AcmePrimary });

        var first = cache.Acquire("acme");
        var second = cache.Acquire("ACME");

        Assert.That(second, Is.SameAs(first), "tenant ids are compared ignoring case");
        Assert.That(first.Cluster.Name, Is.EqualTo("acme"), "the cluster is named after the configured key");
        Assert.That((cache.Created, cache.LeasesOf("acme")), Is.EqualTo((1L, 2)));
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("  ")]
    public async Task No_tenant_is_an_error(string? tenant)
    {
        await using var cache = Cache(new() { ["EfReplica:Tenants:acme:Primary"] = AcmePrimary });

        var exception = Assert.Throws<EfReplicaTenantException>(() => cache.Acquire(tenant));

        Assert.That(exception!.TenantId, Is.Null);
        Assert.That(exception.Message, Does.StartWith("No tenant was resolved for this scope"));
    }

    [Test]
    public async Task An_unknown_tenant_is_an_error_and_leaves_nothing_behind()
    {
        var catalog = new Catalog();
        await using var cache = Cache(new() { ["EfReplica:Tenants:acme:Primary"] = AcmePrimary }, catalog);

        var exception = Assert.Throws<EfReplicaTenantException>(() => cache.Acquire("initech"));

        Assert.That(exception!.TenantId, Is.EqualTo("initech"));
        Assert.That(exception.Message, Does.StartWith("Tenant 'initech' is unknown: it is not configured (EfReplica:Tenants:initech)"));
        Assert.That(catalog.Asked, Is.EqualTo(new[] { "initech" }));
        Assert.That((cache.IsOpen("initech"), cache.Created), Is.EqualTo((false, 0L)));
    }

    [Test]
    public async Task The_catalogue_fills_in_settings_that_start_from_the_shared_defaults()
    {
        var catalog = new Catalog { ["hooli"] = options => options.Primary = HooliPrimary };
        await using var cache = Cache(new() { ["EfReplica:MaxReplicaLag"] = "00:00:09", ["EfReplica:WriteFunctions:0"] = "audit.log" }, catalog);

        var entry = cache.Acquire("hooli");

        Assert.That(entry.Cluster.Name, Is.EqualTo("hooli"));
        Assert.That(catalog.Received!.MaxReplicaLag, Is.EqualTo(TimeSpan.FromSeconds(9)));
        Assert.That(catalog.Received.WriteFunctions, Is.EqualTo(new[] { "audit.log" }));
    }

    [Test]
    public async Task Settings_from_the_catalogue_are_validated_and_named()
    {
        var catalog = new Catalog { ["hooli"] = options => options.HealthCheckInterval = TimeSpan.Zero };
        await using var cache = Cache([], catalog);

        var exception = Assert.Throws<OptionsValidationException>(() => cache.Acquire("hooli"));

        Assert.That(exception!.Failures, Has.Some.StartsWith("IEfReplicaTenantCatalog[hooli]:Primary is required"));
        Assert.That(exception.Failures, Has.Some.StartsWith("IEfReplicaTenantCatalog[hooli]:HealthCheckInterval must be positive"));
        Assert.That(cache.IsOpen("hooli"), Is.False);
    }

    [Test]
    public async Task A_tenant_from_the_catalogue_cannot_use_another_tenants_database()
    {
        var catalog = new Catalog
        {
            ["hooli"] = options => options.Primary = AcmePrimary.Replace("Username=app", "Username=hooli", StringComparison.Ordinal),
            ["piedpiper"] = options => options.Primary = HooliPrimary,
            ["raviga"] = options => options.Primary = HooliPrimary,
        };
        await using var cache = Cache(new() { ["EfReplica:Tenants:acme:Primary"] = AcmePrimary }, catalog);

        var configured = Assert.Throws<EfReplicaTenantException>(() => cache.Acquire("hooli"));
        cache.Acquire("piedpiper");
        var live = Assert.Throws<EfReplicaTenantException>(() => cache.Acquire("raviga"));

        Assert.That(configured!.Message, Does.StartWith("Tenant 'hooli' has the same primary server and database as tenant 'acme'"));
        Assert.That(live!.Message, Does.StartWith("Tenant 'raviga' has the same primary server and database as tenant 'piedpiper'"));
    }

    [Test]
    public async Task An_idle_tenant_is_closed_after_the_idle_timeout_and_created_again_on_next_use()
    {
        var catalog = new Catalog { ["hooli"] = options => options.Primary = HooliPrimary };
        await using var cache = Cache(new() { ["EfReplica:Tenancy:IdleTimeout"] = "00:01:00" }, catalog);
        var entry = cache.Acquire("hooli");
        cache.Release(entry, lease: null);

        _time.Advance(TimeSpan.FromSeconds(59));
        cache.Sweep();
        Assert.That(cache.IsOpen("hooli"), Is.True, "not idle long enough");

        _time.Advance(TimeSpan.FromSeconds(1));
        cache.Sweep();
        await cache.WhenClosedAsync();
        Assert.That((cache.IsOpen("hooli"), cache.Closed), Is.EqualTo((false, 1L)));

        var again = cache.Acquire("hooli");
        Assert.That(again, Is.Not.SameAs(entry));
        Assert.That((cache.Created, catalog.Asked.Count), Is.EqualTo((2L, 2)), "created again, asking the catalogue again");
    }

    [Test]
    public async Task A_tenant_held_by_a_lease_is_never_closed()
    {
        await using var cache = Cache(new() { ["EfReplica:Tenants:acme:Primary"] = AcmePrimary, ["EfReplica:Tenancy:IdleTimeout"] = "00:00:01" });
        var held = cache.Acquire("acme");
        var released = cache.Acquire("acme");
        cache.Release(released, lease: null);

        _time.Advance(TimeSpan.FromHours(1));
        cache.Sweep();

        Assert.That((cache.IsOpen("acme"), cache.Closed), Is.EqualTo((true, 0L)));
        cache.Release(held, lease: null);
        _time.Advance(TimeSpan.FromSeconds(1));
        cache.Sweep();
        Assert.That(cache.IsOpen("acme"), Is.False, "closed once the last lease let go and the timeout passed");
    }

    [Test]
    public async Task Tenant_settings_are_validated_with_their_paths()
    {
        var settings = Settings(new()
        {
            ["EfReplica:Tenancy:IdleTimeout"] = "00:00:00",
            ["EfReplica:Tenants:acme:Primary"] = AcmePrimary,
            ["EfReplica:Tenants:globex:Primary"] = AcmePrimary.Replace("Password", "Timeout=5;Password", StringComparison.Ordinal),
            ["EfReplica:Tenants:initech:Replicas:0:ConnectionString"] = HooliPrimary,
        });

        Assert.That(settings.Failures, Is.EquivalentTo(new[]
        {
            "EfReplica:Tenants:initech:Primary is required: set it to an Npgsql connection string (Host=...;Database=...;Username=...).",
            "EfReplica:Tenancy:IdleTimeout must be positive.",
            "EfReplica:Tenants:globex:Primary points at the same server and database as EfReplica:Tenants:acme:Primary; tenants must not share a database.",
        }));
        await Task.CompletedTask;
    }

    private TenantClusterCache Cache(Dictionary<string, string?> settings, IEfReplicaTenantCatalog? catalog = null)
    {
        var loaded = Settings(settings);
        Assert.That(loaded.Failures, Is.Empty);
        return new TenantClusterCache(loaded, catalog, loggerFactory: null, configureDataSource: null, _time);
    }

    private static ClusterSet Settings(Dictionary<string, string?> settings)
    {
        settings.TryAdd("EfReplica:HealthCheckTimeout", "00:00:00.200");
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var set = new ClusterSet();
        set.LoadTenants(configuration.GetSection("EfReplica"), configure: null);
        return set;
    }

    private sealed class Catalog : Dictionary<string, Action<EfReplicaOptions>>, IEfReplicaTenantCatalog
    {
        public List<string> Asked { get; } = [];

        public EfReplicaOptions? Received { get; private set; }

        public bool TryConfigureTenant(string tenantId, EfReplicaOptions options)
        {
            Asked.Add(tenantId);
            Received = options;
            if (!TryGetValue(tenantId, out var configure))
            {
                return false;
            }

            configure(options);
            return true;
        }
    }

    /// <summary>A clock the test moves; timers are the system's (the cache's sweep is called by the tests).</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _offset;

        public void Advance(TimeSpan by) => Interlocked.Add(ref _offset, (long)(by.TotalSeconds * TimestampFrequency));

        public override long GetTimestamp() => base.GetTimestamp() + Interlocked.Read(ref _offset);
    }
}
