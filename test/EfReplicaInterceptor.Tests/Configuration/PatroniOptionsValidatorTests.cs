using EfReplicaInterceptor.Configuration;
using Microsoft.Extensions.Configuration;

namespace EfReplicaInterceptor.Tests.Configuration;

/// <summary>The Patroni settings are checked at start-up like the others: each problem names its path, never its value.</summary>
public sealed class PatroniOptionsValidatorTests
{
    private const string Secret = "s3cr3t-Pa55";
    private const string Primary = $"Host=db-a,db-b;Database=shop;Username=app;Password={Secret};Target Session Attributes=primary";

    private static List<string> Problems(Dictionary<string, string?> settings)
    {
        var section = new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection("EfReplica");
        return [.. LiveSettings.ReadSection(section, "EfReplica").Failures];
    }

    [Test]
    public void Valid_patroni_settings_pass()
    {
        Assert.That(Problems(new()
        {
            ["EfReplica:Primary"] = Primary,
            ["EfReplica:Topology:Patroni:Endpoints:0"] = "http://127.0.0.1:8008",
            ["EfReplica:Topology:Patroni:Endpoints:1"] = "https://patroni-b:8008/",
            ["EfReplica:Topology:Patroni:ConnectionString"] = $"Host=ignored;Database=shop;Username=reader;Password={Secret}",
        }), Is.Empty);
    }

    [TestCase("ftp://127.0.0.1:8008")]
    [TestCase("127.0.0.1:8008")]
    [TestCase("http://user:" + Secret + "@127.0.0.1:8008")]
    [TestCase("not a url " + Secret)]
    public void An_endpoint_that_is_not_an_http_address_without_credentials_is_refused(string endpoint)
    {
        var problems = Problems(new() { ["EfReplica:Primary"] = Primary, ["EfReplica:Topology:Patroni:Endpoints:0"] = endpoint });

        Assert.That(problems, Has.Exactly(1).StartsWith("EfReplica:Topology:Patroni:Endpoints:0 must be an absolute http or https address"));
        Assert.That(problems, Has.None.Contains(Secret));
    }

    [Test]
    public void Listed_replicas_and_patroni_together_are_refused()
    {
        var problems = Problems(new()
        {
            ["EfReplica:Primary"] = Primary,
            ["EfReplica:Replicas:0:ConnectionString"] = $"Host=db-c;Database=shop;Password={Secret}",
            ["EfReplica:Topology:Patroni:Endpoints:0"] = "http://127.0.0.1:8008",
        });

        Assert.That(problems, Is.EqualTo(new[] { "EfReplica:Replicas must be empty when EfReplica:Topology:Patroni:Endpoints is set: Patroni reports the replicas." }));
    }

    [Test]
    public void A_bad_template_and_a_misspelt_key_are_named_by_their_paths()
    {
        var problems = Problems(new()
        {
            ["EfReplica:Primary"] = Primary,
            ["EfReplica:Topology:Patroni:Endpionts:0"] = "http://127.0.0.1:8008",
            ["EfReplica:Topology:Patroni:ConnectionString"] = $"Host=x;Port=notaport;Password={Secret}",
        });

        Assert.Multiple(() =>
        {
            Assert.That(problems, Has.Some.StartsWith("EfReplica:Topology:Patroni:Endpionts is not a setting; did you mean EfReplica:Topology:Patroni:Endpoints?"));
            Assert.That(problems, Has.Some.StartsWith("EfReplica:Topology:Patroni:ConnectionString is not a valid Npgsql connection string"));
            Assert.That(problems, Has.Some.StartsWith("EfReplica:Topology:Patroni:ConnectionString is set but EfReplica:Topology:Patroni:Endpoints lists no Patroni address"));
            Assert.That(problems, Has.None.Contains(Secret));
        });
    }
}
