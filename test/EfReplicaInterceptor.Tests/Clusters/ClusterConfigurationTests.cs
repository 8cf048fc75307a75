using EfReplicaInterceptor.Clusters;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace EfReplicaInterceptor.Tests.Clusters;

/// <summary>How each named cluster's settings are made from the shared section and its own, and how problems are named.</summary>
public sealed class ClusterConfigurationTests
{
    internal const string Secret = "s3cr3t-Pa55";
    internal const string OrdersPrimary = $"Host=127.0.0.1;Port=1;Database=orders;Username=app;Password={Secret}";
    internal const string OrdersReplica = $"Host=127.0.0.2;Port=1;Database=orders;Username=app;Password={Secret}";
    internal const string AnalyticsPrimary = $"Host=127.0.0.3;Port=1;Database=analytics;Username=app;Password={Secret}";
    internal const string DefaultPrimary = $"Host=127.0.0.9;Port=1;Database=shop;Username=app;Password={Secret}";

    [Test]
    public void A_named_cluster_read_again_has_its_replicas_its_problems_by_path_and_its_start_up_settings()
    {
        var root = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:03",
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = OrdersReplica,
            ["EfReplica:Clusters:orders:Replicas:0:Weight"] = "0",
            ["EfReplica:Clusters:analytics:Primary"] = AnalyticsPrimary,
        }).Build().GetSection("EfReplica");

        var orders = ClusterConfiguration.ReadCluster(root, "orders");
        var analytics = ClusterConfiguration.ReadCluster(root, "analytics");
        var gone = ClusterConfiguration.ReadCluster(root, "billing");

        Assert.Multiple(() =>
        {
            Assert.That(orders.Failures, Is.EqualTo(new[] { "EfReplica:Clusters:orders:Replicas:0:Weight must be between 1 and 100." }));
            Assert.That(orders.Options!.Replicas, Has.Count.EqualTo(1));
            Assert.That(orders.StartupSettings.Keys, Is.EquivalentTo(new[] { "EfReplica:HealthCheckInterval", "EfReplica:Clusters:orders:Primary" }), "every setting but the replicas");
            Assert.That(analytics.Failures, Is.Empty);
            Assert.That(analytics.Options!.HealthCheckInterval, Is.EqualTo(TimeSpan.FromSeconds(3)));
            Assert.That(gone.Options, Is.Null);
            Assert.That(gone.Failures.Single(), Does.StartWith("EfReplica:Clusters:billing is no longer listed"));
        });
    }

    [Test]
    public void A_cluster_inherits_the_shared_settings_and_overrides_its_own()
    {
        var clusters = Load(new()
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:03",
            ["EfReplica:MaxReplicaLag"] = "00:00:07",
            ["EfReplica:ShadowMode"] = "true",
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:analytics:Primary"] = AnalyticsPrimary,
            ["EfReplica:Clusters:analytics:MaxReplicaLag"] = "00:00:30",
            ["EfReplica:Clusters:analytics:ShadowMode"] = "false",
        });

        var orders = clusters.Clusters["orders"].Options;
        var analytics = clusters.Clusters["analytics"].Options;
        Assert.That((orders.HealthCheckInterval, orders.MaxReplicaLag, orders.ShadowMode), Is.EqualTo((TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(7), true)));
        Assert.That((analytics.HealthCheckInterval, analytics.MaxReplicaLag, analytics.ShadowMode), Is.EqualTo((TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(30), false)));
        Assert.That(orders.HealthCheckTimeout, Is.EqualTo(new EfReplicaOptions().HealthCheckTimeout), "a setting set nowhere keeps the library default");
        Assert.That((orders.Primary, analytics.Primary), Is.EqualTo((OrdersPrimary, AnalyticsPrimary)));
        Assert.That(clusters.Failures, Is.Empty);
    }

    [Test]
    public void Servers_are_never_inherited()
    {
        var clusters = Load(new()
        {
            ["EfReplica:Primary"] = DefaultPrimary,
            ["EfReplica:Replicas:0:ConnectionString"] = OrdersReplica,
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:analytics:ShadowMode"] = "true",
        });

        Assert.That(clusters.Clusters["orders"].Options.Replicas, Is.Empty, "the shared section's replicas are not the cluster's");
        Assert.That(clusters.Clusters["analytics"].Options.Primary, Is.Null, "the shared section's primary is not the cluster's");
        Assert.That(clusters.Failures, Is.EqualTo(new[] { "EfReplica:Clusters:analytics:Primary is required: set it to an Npgsql connection string (Host=...;Database=...;Username=...)." }));
    }

    [Test]
    public void Write_functions_add_up()
    {
        var clusters = Load(new()
        {
            ["EfReplica:WriteFunctions:0"] = "audit.log_access",
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:orders:WriteFunctions:0"] = "orders.reserve",
            ["EfReplica:Clusters:orders:WriteFunctions:1"] = "AUDIT.LOG_ACCESS",
            ["EfReplica:Clusters:analytics:Primary"] = AnalyticsPrimary,
        });

        Assert.That(clusters.Clusters["orders"].Options.WriteFunctions, Is.EqualTo(new[] { "audit.log_access", "orders.reserve" }));
        Assert.That(clusters.Clusters["analytics"].Options.WriteFunctions, Is.EqualTo(new[] { "audit.log_access" }));
    }

    [Test]
    public void Each_cluster_gets_its_own_copy_of_the_settings()
    {
        var clusters = Load(new()
        {
            ["EfReplica:WriteFunctions:0"] = "audit.log_access",
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:analytics:Primary"] = AnalyticsPrimary,
        });

        clusters.Clusters["orders"].Options.WriteFunctions.Add("changed");

        Assert.That(clusters.Clusters["analytics"].Options.WriteFunctions, Is.EqualTo(new[] { "audit.log_access" }));
        Assert.That(clusters.SharedDefaults().WriteFunctions, Is.EqualTo(new[] { "audit.log_access" }));
    }

    public static IEnumerable<TestCaseData> InvalidSettings()
    {
        yield return Case("cluster without primary", new() { ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = OrdersReplica },
            "EfReplica:Clusters:orders:Primary is required");
        yield return Case("malformed replica of a cluster", new() { ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = OrdersReplica, ["EfReplica:Clusters:orders:Replicas:1:ConnectionString"] = $"Host=x;Password={Secret};Port=notanumber" },
            "EfReplica:Clusters:orders:Replicas:1:ConnectionString is not a valid Npgsql connection string: the value of keyword 'port' is invalid");
        yield return Case("bad shared default", new() { ["EfReplica:HealthCheckInterval"] = "00:00:00", ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary },
            "EfReplica:HealthCheckInterval must be positive");
        yield return Case("bad own override", new() { ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:MaxReplicaLag"] = "-00:00:01" },
            "EfReplica:Clusters:orders:MaxReplicaLag must be positive");
        yield return Case("empty shared write function", new() { ["EfReplica:WriteFunctions:0"] = "audit.log", ["EfReplica:WriteFunctions:1"] = " ", ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary },
            "EfReplica:WriteFunctions:1 is empty");
        yield return Case("empty own write function", new() { ["EfReplica:WriteFunctions:0"] = "audit.log", ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:WriteFunctions:0"] = " " },
            "EfReplica:Clusters:orders:WriteFunctions:0 is empty");
        yield return Case("no cluster", new() { ["EfReplica:Primary"] = DefaultPrimary },
            "EfReplica:Clusters names no cluster");
        yield return Case("misspelt shared setting", new() { ["EfReplica:HealthCheckIntervall"] = "00:00:05", ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary },
            "EfReplica:HealthCheckIntervall is not a setting; did you mean EfReplica:HealthCheckInterval?");
        yield return Case("misspelt own setting", new() { ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:MaxReplicaLagg"] = "00:00:05" },
            "EfReplica:Clusters:orders:MaxReplicaLagg is not a setting; did you mean EfReplica:Clusters:orders:MaxReplicaLag?");
        yield return Case("replica weight of a cluster that is not a number", new() { ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = OrdersReplica, ["EfReplica:Clusters:orders:Replicas:0:Weight"] = "heavy" },
            "EfReplica:Clusters:orders:Replicas:0:Weight could not be read as a whole number");
        yield return Case("replicas of a cluster given as a string", new() { ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:Replicas"] = OrdersReplica },
            "EfReplica:Clusters:orders:Replicas must be a list");
        yield return Case("shared value that cannot be read", new() { ["EfReplica:MaxReplicaLag"] = Secret, ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary },
            "EfReplica:MaxReplicaLag could not be read as a duration");
        yield return Case("replica of a cluster equal to its primary", new() { ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = OrdersPrimary.Replace("Host=127.0.0.1;Port=1", "Host=127.0.0.1:1", StringComparison.Ordinal) },
            "EfReplica:Clusters:orders:Replicas:0:ConnectionString points at the same server and database as EfReplica:Clusters:orders:Primary");
        yield return Case("shared base delay longer than own max delay", new() { ["EfReplica:Failover:BaseDelay"] = "00:00:02", ["EfReplica:Failover:MaxDelay"] = "00:00:05", ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:Failover:MaxDelay"] = "00:00:01" },
            "EfReplica:Clusters:orders:Failover:BaseDelay is longer than EfReplica:Clusters:orders:Failover:MaxDelay");
        yield return Case("tenancy in a cluster", new() { ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary, ["EfReplica:Clusters:orders:Tenancy:IdleTimeout"] = "00:01:00" },
            "EfReplica:Clusters:orders:Tenancy is not a setting of EfReplica:Clusters:orders");
    }

    private static TestCaseData Case(string name, Dictionary<string, string?> settings, string expected)
        => new TestCaseData(settings, expected).SetName($"Host start fails: {name}");

    [TestCaseSource(nameof(InvalidSettings))]
    public void Host_start_fails_with_a_message_naming_the_setting_by_its_full_path(Dictionary<string, string?> settings, string expected)
    {
        using var host = BuildHost(settings);

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures, Has.Exactly(1).Contains(expected));
        Assert.That(exception.Message, Does.Not.Contain(Secret), "a password must never appear in an error message");
        Assert.That(exception.Message, Does.Not.Contain("127.0.0."), "a connection string must never appear in an error message");
    }

    [Test]
    public void A_bad_shared_default_is_reported_once_under_its_own_path_not_per_cluster()
    {
        using var host = BuildHost(new()
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:00",
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:analytics:Primary"] = AnalyticsPrimary,
        });

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures, Is.EqualTo(new[] { "EfReplica:HealthCheckInterval must be positive." }));
    }

    [Test]
    public void Every_problem_of_every_cluster_is_reported_at_once()
    {
        using var host = BuildHost(new()
        {
            ["EfReplica:Clusters:orders:HealthCheckTimeout"] = "00:00:00",
            ["EfReplica:Clusters:analytics:Primary"] = "Host=",
        });

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures, Has.Exactly(3).Items);
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Clusters:orders:Primary is required"));
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Clusters:orders:HealthCheckTimeout must be positive"));
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Clusters:analytics:Primary"));
    }

    [Test]
    public async Task Valid_settings_register_each_cluster_under_its_configured_name()
    {
        using var host = BuildHost(new()
        {
            ["EfReplica:HealthCheckTimeout"] = "00:00:00.200",
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:orders:Replicas:0:Name"] = "orders-east",
            ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = OrdersReplica,
            ["EfReplica:Clusters:analytics:Primary"] = AnalyticsPrimary,
        });

        await host.StartAsync();
        var orders = host.Services.GetRequiredKeyedService<EfReplicaCluster>("orders");
        var analytics = host.Services.GetRequiredKeyedService<EfReplicaCluster>("analytics");

        Assert.That((orders.Name, analytics.Name), Is.EqualTo(("orders", "analytics")));
        Assert.That(orders.ReplicaNames, Is.EqualTo(new[] { "orders-east" }));
        Assert.That(analytics.ReplicaNames, Is.Empty);
        Assert.That(orders.PrimaryDataSource, Is.Not.SameAs(analytics.PrimaryDataSource));
        Assert.That(host.Services.GetService<EfReplicaCluster>(), Is.Null, "no unnamed cluster is registered");
        await host.StopAsync();
    }

    [Test]
    public void The_same_cluster_name_cannot_be_registered_twice()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["A:Clusters:orders:Primary"] = OrdersPrimary,
            ["B:Clusters:orders:Primary"] = AnalyticsPrimary,
        }).Build();
        var services = new ServiceCollection().AddEfReplicaClusters(configuration.GetSection("A"));

        var exception = Assert.Throws<InvalidOperationException>(() => services.AddEfReplicaClusters(configuration.GetSection("B")));

        Assert.That(exception!.Message, Does.Contain("'orders' is already registered"));
    }

    [Test]
    public void Tenant_settings_are_strict_too()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:Tenants:acme:Primary"] = OrdersPrimary,
            ["EfReplica:Tenants:acme:Replicas:0:ConnectionString"] = OrdersReplica,
            ["EfReplica:Tenants:acme:Replicas:0:Weight"] = Secret,
            ["EfReplica:Tenancy:IdleTimout"] = "00:01:00",
            ["EfReplica:Tenancy:IdleTimeout"] = Secret,
        });
        builder.Services.AddEfReplicaTenants(builder.Configuration.GetSection("EfReplica"));
        using var host = builder.Build();

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures, Has.Some.StartsWith("EfReplica:Tenants:acme:Replicas:0:Weight could not be read as a whole number"));
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Tenancy:IdleTimout is not a setting; did you mean EfReplica:Tenancy:IdleTimeout?"));
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Tenancy:IdleTimeout could not be read as a duration"));
        Assert.That(exception.Message, Does.Not.Contain(Secret));
    }

    [Test]
    public void A_valid_shared_section_with_clusters_binds_as_before()
    {
        var clusters = Load(new()
        {
            ["EfReplica:LoadBalancing"] = "LeastLag",
            ["EfReplica:Failover:MaxRetries"] = "4",
            ["EfReplica:Tenancy:IdleTimeout"] = "00:01:00",
            ["EfReplica:Clusters:orders:Primary"] = OrdersPrimary,
            ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = OrdersReplica,
            ["EfReplica:Clusters:orders:Replicas:0:Weight"] = "7",
        });

        var orders = clusters.Clusters["orders"].Options;
        Assert.That(clusters.Failures, Is.Empty);
        Assert.That((orders.LoadBalancing, orders.Failover.MaxRetries, orders.Replicas.Single().Weight), Is.EqualTo((LoadBalancing.LeastLag, 4, 7)));
    }

    internal static ClusterSet Load(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var clusters = new ClusterSet();
        clusters.LoadClusters(configuration.GetSection("EfReplica"));
        return clusters;
    }

    private static IHost BuildHost(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddEfReplicaClusters(builder.Configuration.GetSection("EfReplica"));
        return builder.Build();
    }
}
