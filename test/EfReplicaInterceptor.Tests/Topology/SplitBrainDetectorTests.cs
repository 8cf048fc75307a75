using EfReplicaInterceptor.Topology;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>Telling two writable primaries from one server reached twice, and the per-host connection strings. No server.</summary>
public sealed class SplitBrainDetectorTests
{
    private static readonly ServerIdentity Old = new(SystemIdentifier: 7, Port: 5432, StartedAtTicks: 100, Timeline: 1);
    private static readonly ServerIdentity Promoted = new(SystemIdentifier: 7, Port: 5433, StartedAtTicks: 200, Timeline: 2);

    [Test]
    public void One_writable_server_is_no_split_brain_even_when_reached_by_several_addresses()
    {
        var problem = SplitBrainDetector.Judge(
            [new("primary", Old), new("primary host 'localhost:5432'", Old), new("primary host '127.0.0.1:5432'", Old)], out var servers);

        Assert.That((problem, servers), Is.EqualTo(((string?)null, 1)));
    }

    [Test]
    public void No_writable_server_is_no_split_brain()
    {
        Assert.That(SplitBrainDetector.Judge([], out var servers), Is.Null);
        Assert.That(servers, Is.Zero);
    }

    [Test]
    public void A_promoted_replica_beside_a_running_primary_is_a_split_brain_naming_both_with_their_timelines()
    {
        var problem = SplitBrainDetector.Judge([new("primary", Old), new("replica 'standby'", Promoted)], out var servers);

        Assert.That(servers, Is.EqualTo(2));
        Assert.That(problem, Does.StartWith("2 servers accept writes: "));
        Assert.That(problem, Does.Contain("primary (port 5432, timeline 1)").And.Contain("replica 'standby' (port 5433, timeline 2)"));
    }

    [Test]
    public void Two_hosts_of_a_multi_host_primary_both_writable_is_a_split_brain_and_labels_of_one_server_are_joined()
    {
        var problem = SplitBrainDetector.Judge(
            [new("primary", Promoted), new("primary host 'a:5433'", Promoted), new("replica 'standby'", Promoted), new("primary host 'b:5432'", Old)], out var servers);

        Assert.That(servers, Is.EqualTo(2));
        Assert.That(problem, Does.Contain("primary = primary host 'a:5433' = replica 'standby' (port 5433, timeline 2)").And.Contain("primary host 'b:5432' (port 5432, timeline 1)"));
    }

    [Test]
    public void A_single_host_primary_is_not_probed_host_by_host()
    {
        Assert.That(SplitBrainDetector.HostConnectionStrings("Host=db1;Port=5432;Username=app;Password=x"), Is.Empty);
        Assert.That(SplitBrainDetector.HostConnectionStrings(null), Is.Empty);
    }

    [Test]
    public void Each_host_of_a_multi_host_primary_gets_a_single_host_connection_string_with_the_same_credentials_in_order()
    {
        var hosts = SplitBrainDetector.HostConnectionStrings(
            "Host=db2:5433, db1 ,[::1]:5434;Port=5432;Database=shop;Username=app;Password=s3cr;et;Target Session Attributes=primary".Replace("s3cr;et", "\"s3cr;et\"", StringComparison.Ordinal));

        Assert.That(hosts.Select(host => host.Label), Is.EqualTo(new[] { "primary host 'db2:5433'", "primary host 'db1:5432'", "primary host '::1:5434'" }));
        var builders = hosts.Select(host => new NpgsqlConnectionStringBuilder(host.ConnectionString)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(builders.Select(b => (b.Host, b.Port)), Is.EqualTo(new[] { ("db2", 5433), ("db1", 5432), ("::1", 5434) }));
            Assert.That(builders.Select(b => (b.Database, b.Username, b.Password)), Is.All.EqualTo(("shop", "app", "s3cr;et")));
            Assert.That(builders.Select(b => b.TargetSessionAttributes), Is.All.Null, "each host is asked what it is, not filtered");
        });
    }
}
