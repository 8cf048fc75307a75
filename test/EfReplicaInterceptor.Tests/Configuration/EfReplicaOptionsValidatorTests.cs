using EfReplicaInterceptor.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace EfReplicaInterceptor.Tests.Configuration;

public sealed class EfReplicaOptionsValidatorTests
{
    private const string Secret = "s3cr3t-Pa55";
    private const string Primary = $"Host=db-primary;Port=5432;Database=shop;Username=app;Password={Secret}";
    private const string Replica1 = $"Host=db-replica-1;Database=shop;Username=app;Password={Secret}";
    private const string Replica2 = $"Host=db-replica-2;Database=shop;Username=app;Password={Secret}";

    public static IEnumerable<TestCaseData> InvalidSettings()
    {
        yield return Case("missing primary", new() { ["EfReplica:Replicas:0:ConnectionString"] = Replica1 },
            "EfReplica:Primary is required");
        yield return Case("blank primary", new() { ["EfReplica:Primary"] = "  " },
            "EfReplica:Primary is required");
        yield return Case("malformed primary", new() { ["EfReplica:Primary"] = $"Host=x;Password={Secret};Port=notanumber" },
            "EfReplica:Primary is not a valid Npgsql connection string: the value of keyword 'port' is invalid");
        yield return Case("unknown keyword", new() { ["EfReplica:Primary"] = $"Hots=x;Password={Secret}" },
            "EfReplica:Primary is not a valid Npgsql connection string: keyword 'hots' is not supported");
        yield return Case("not key-value pairs", new() { ["EfReplica:Primary"] = $"Host=x;{Secret}" },
            "EfReplica:Primary is not a valid Npgsql connection string: it is not a list of keyword=value pairs separated by ';'");
        yield return Case("primary without host", new() { ["EfReplica:Primary"] = $"Database=shop;Password={Secret}" },
            "EfReplica:Primary has no Host");
        yield return Case("replica without connection string", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Replicas:0:Name"] = "r1" },
            "EfReplica:Replicas:0:ConnectionString is required");
        yield return Case("malformed replica", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Replicas:0:ConnectionString"] = Replica1, ["EfReplica:Replicas:1:ConnectionString"] = "Host=y;Timeout=-x" },
            "EfReplica:Replicas:1:ConnectionString is not a valid Npgsql connection string: the value of keyword 'timeout' is invalid");
        yield return Case("duplicate replica", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Replicas:0:ConnectionString"] = Replica1, ["EfReplica:Replicas:1:ConnectionString"] = Replica1.Replace("Username=app", "Username=other", StringComparison.Ordinal) },
            "EfReplica:Replicas:1 is a duplicate replica: it points at the same server and database as EfReplica:Replicas:0");
        yield return Case("duplicate replica name", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Replicas:0:ConnectionString"] = Replica1, ["EfReplica:Replicas:0:Name"] = "east", ["EfReplica:Replicas:1:ConnectionString"] = Replica2, ["EfReplica:Replicas:1:Name"] = "EAST" },
            "EfReplica:Replicas:1:Name 'EAST' is already used by EfReplica:Replicas:0");
        yield return Case("multi-host replica", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Replicas:0:ConnectionString"] = "Host=a,b;Database=shop" },
            "EfReplica:Replicas:0:ConnectionString lists several hosts");
        yield return Case("replica weight out of range", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Replicas:0:ConnectionString"] = Replica1, ["EfReplica:Replicas:0:Weight"] = "0" },
            "EfReplica:Replicas:0:Weight must be between 1 and 100.");
        yield return Case("zero interval", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:HealthCheckInterval"] = "00:00:00" },
            "EfReplica:HealthCheckInterval must be positive.");
        yield return Case("negative interval", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:HealthCheckInterval"] = "-00:00:01" },
            "EfReplica:HealthCheckInterval must be positive.");
        yield return Case("zero lag budget", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:MaxReplicaLag"] = "00:00:00" },
            "EfReplica:MaxReplicaLag must be positive.");
        yield return Case("negative lag budget", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:MaxReplicaLag"] = "-00:00:05" },
            "EfReplica:MaxReplicaLag must be positive.");
        yield return Case("zero read deadline", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Failover:ReadDeadline"] = "00:00:00" },
            "EfReplica:Failover:ReadDeadline must be positive when set.");
        yield return Case("zero primary wait", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Failover:PrimaryWait"] = "00:00:00" },
            "EfReplica:Failover:PrimaryWait must be positive when set.");
        yield return Case("read deadline shorter than a probe turn", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:HealthCheckInterval"] = "00:00:02", ["EfReplica:Failover:ReadDeadline"] = "00:00:03.5" },
            "EfReplica:Failover:ReadDeadline must be at least EfReplica:HealthCheckInterval plus EfReplica:HealthCheckTimeout");
        yield return Case("empty write function", new() { ["EfReplica:Primary"] = Primary, ["EfReplica:WriteFunctions:0"] = "audit.log", ["EfReplica:WriteFunctions:1"] = " " },
            "EfReplica:WriteFunctions:1 is empty");
    }

    private static TestCaseData Case(string name, Dictionary<string, string?> settings, string expected)
        => new TestCaseData(settings, expected).SetName($"Host start fails: {name}");

    [TestCaseSource(nameof(InvalidSettings))]
    public void Host_start_fails_with_a_message_naming_the_setting(Dictionary<string, string?> settings, string expected)
    {
        using var host = BuildHost(settings);

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Message, Does.Contain(expected));
        Assert.That(exception.Message, Does.Not.Contain(Secret), "a password must never appear in an error message");
        Assert.That(exception.Message, Does.Not.Contain("db-primary;"), "a connection string must never appear in an error message");
        foreach (var value in settings.Values.OfType<string>().Where(v => v.Trim().Length >= 3 && !expected.Contains(v, StringComparison.Ordinal)))
        {
            Assert.That(exception.Message, Does.Not.Contain(value), "a message names the setting, never its value");
        }
    }

    [Test]
    public void Every_problem_is_reported_at_once()
    {
        using var host = BuildHost(new()
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:00",
            ["EfReplica:MaxReplicaLag"] = "-00:00:01",
        });

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures, Has.Exactly(3).Items);
    }

    [Test]
    public async Task Valid_settings_start_the_host_and_bind_every_value()
    {
        using var host = BuildHost(new()
        {
            ["EfReplica:Primary"] = Primary,
            ["EfReplica:Replicas:0:ConnectionString"] = Replica1,
            ["EfReplica:Replicas:1:ConnectionString"] = Replica2,
            ["EfReplica:Replicas:1:Name"] = "west",
            ["EfReplica:ShadowMode"] = "true",
            ["EfReplica:HealthCheckInterval"] = "00:00:02",
            ["EfReplica:MaxReplicaLag"] = "00:00:10",
            ["EfReplica:WriteFunctions:0"] = "audit.log_access",
        });

        await host.StartAsync();
        var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
        var options = host.Services.GetRequiredService<IOptions<EfReplicaOptions>>().Value;
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(cluster.ReplicaNames, Is.EqualTo(new[] { "db-replica-1:5432", "west" }));
            Assert.That(cluster.Interceptors, Has.Count.EqualTo(4));
            Assert.That(options.ShadowMode, Is.True);
            Assert.That(options.HealthCheckInterval, Is.EqualTo(TimeSpan.FromSeconds(2)));
            Assert.That(options.MaxReplicaLag, Is.EqualTo(TimeSpan.FromSeconds(10)));
            Assert.That(options.WriteFunctions, Is.EqualTo(new[] { "audit.log_access" }));
        });
    }

    [Test]
    public void An_HA_list_naming_every_node_the_single_host_primary_among_them_is_accepted()
    {
        var failures = EfReplicaOptionsValidator.Collect(new EfReplicaOptions
        {
            Primary = Primary,
            Replicas =
            [
                new ReplicaEndpointOptions { ConnectionString = Primary.Replace("Host=db-primary;Port=5432", "Host=DB-PRIMARY", StringComparison.Ordinal) },
                new ReplicaEndpointOptions { ConnectionString = Replica1 },
            ],
        }, "EfReplica");

        Assert.That(failures, Is.Empty);
    }

    [Test]
    public void An_HA_list_under_a_multi_host_primary_is_accepted()
    {
        var failures = EfReplicaOptionsValidator.Collect(new EfReplicaOptions
        {
            Primary = $"Host=db-primary,db-replica-1;Database=shop;Username=app;Password={Secret};Target Session Attributes=primary",
            Replicas = [new ReplicaEndpointOptions { ConnectionString = Primary }, new ReplicaEndpointOptions { ConnectionString = Replica1 }],
        }, "EfReplica");

        Assert.That(failures, Is.Empty);
    }

    [Test]
    public void Replicas_that_are_only_the_primary_are_still_refused_naming_the_setting()
    {
        var failures = EfReplicaOptionsValidator.Collect(new EfReplicaOptions
        {
            Primary = Primary,
            Replicas = [new ReplicaEndpointOptions { ConnectionString = Primary.Replace("Username=app", "Username=reader", StringComparison.Ordinal) }],
        }, "EfReplica");

        Assert.That(failures, Has.One.StartsWith("EfReplica:Replicas:0:ConnectionString points at the same server and database as EfReplica:Primary, and no other replica is listed"));
        Assert.That(string.Join(" ", failures), Does.Not.Contain(Secret).And.Not.Contain("db-primary"));
    }

    [Test]
    public void Defaults_are_documented_values()
    {
        var options = new EfReplicaOptions();

        Assert.Multiple(() =>
        {
            Assert.That(options.Replicas, Is.Empty);
            Assert.That(options.ShadowMode, Is.False);
            Assert.That(options.HealthCheckInterval, Is.EqualTo(TimeSpan.FromSeconds(1)));
            Assert.That(options.MaxReplicaLag, Is.EqualTo(TimeSpan.FromSeconds(5)));
            Assert.That(options.WriteFunctions, Is.Empty);
        });
    }

    [Test]
    public void Create_without_dependency_injection_validates_too()
    {
        var exception = Assert.Throws<OptionsValidationException>(() => EfReplicaCluster.Create(new EfReplicaOptions { HealthCheckInterval = TimeSpan.Zero }));

        Assert.That(exception!.Message, Does.Contain("EfReplica:Primary is required").And.Contain("EfReplica:HealthCheckInterval must be positive"));
    }

    [Test]
    public void A_nested_section_is_named_by_its_full_path()
    {
        var failures = EfReplicaOptionsValidator.Collect(new EfReplicaOptions(), "Data:Clusters:Orders");

        Assert.That(failures, Has.One.StartsWith("Data:Clusters:Orders:Primary is required"));
    }

    private static IHost BuildHost(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddEfReplica(builder.Configuration.GetSection(EfReplicaOptions.DefaultSectionName));
        return builder.Build();
    }
}
