using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// Which listed node is the primary now, told by identity: the primary listed as a replica is the primary (the health
/// check's Healthy with every node listed), a writable node that is another server is not (a split brain), and a read for
/// the primary may use the one listed node that answers as it. No server: the data sources are never opened.
/// </summary>
public sealed class ClusterRolesTests
{
    private static readonly ServerIdentity NodeA = new(SystemIdentifier: 7, Port: 5432, StartedAtTicks: 100, Timeline: 1);
    private static readonly ServerIdentity NodeB = new(SystemIdentifier: 7, Port: 5433, StartedAtTicks: 200, Timeline: 2);

    private readonly FakeTimeProvider _time = new();
    private readonly List<NpgsqlDataSource> _dataSources = [];

    [TearDown]
    public void DisposeDataSources()
    {
        _dataSources.ForEach(dataSource => dataSource.Dispose());
        _dataSources.Clear();
    }

    [Test]
    public void The_primary_listed_as_a_replica_is_the_current_primary()
    {
        var a = Node("a", NodeA);

        Assert.That(ClusterRoles.IsCurrentPrimary(a, NodeA), Is.True);
        Assert.That(ClusterRoles.IsCurrentPrimary(a, NodeA with { Timeline = 3 }), Is.True, "the same server, sampled either side of a promotion");
    }

    [Test]
    public void A_writable_node_that_is_another_server_than_the_primary_is_not_the_current_primary()
    {
        Assert.That(ClusterRoles.IsCurrentPrimary(Node("b", NodeB), NodeA), Is.False, "two writable servers: a split brain");
        Assert.That(ClusterRoles.IsCurrentPrimary(Node("b", NodeB), primary: null), Is.False, "the primary does not answer");
        Assert.That(ClusterRoles.IsCurrentPrimary(Node("a", NodeA with { StartedAtTicks = 999 }), NodeA), Is.False, "restarted in between: not known to be the same run");
    }

    [Test]
    public void A_standby_is_never_the_current_primary()
    {
        var standby = Standby("s");

        Assert.That(ClusterRoles.IsCurrentPrimary(standby, NodeA), Is.False);
    }

    [Test]
    public void The_only_writable_node_is_found_and_two_different_ones_are_none()
    {
        var a = Node("a", NodeA);
        var b = Node("b", NodeB);
        var s = Standby("s");

        Assert.That(ClusterRoles.OnlyWritable([s, a])?.Name, Is.EqualTo("a"));
        Assert.That(ClusterRoles.OnlyWritable([s]), Is.Null);
        Assert.That(ClusterRoles.OnlyWritable([a, s, b]), Is.Null, "which one takes writes is not known: a split brain");
        Assert.That(ClusterRoles.OnlyWritable([a, Node("a-again", NodeA)])?.Name, Is.EqualTo("a"), "one server listed twice is one");
    }

    private ReplicaEndpoint Endpoint(string name)
    {
        var dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        _dataSources.Add(dataSource);
        return new ReplicaEndpoint(_dataSources.Count - 1, name, dataSource, _time, TimeSpan.FromSeconds(1));
    }

    /// <summary>A listed node whose latest probe answered as the primary, as <paramref name="server"/>.</summary>
    private ReplicaEndpoint Node(string name, ServerIdentity server)
    {
        var node = Endpoint(name);
        node.WritableServer = server;
        node.Availability.ReportProbe(new ReplicaHealth { Reachable = true, InRecovery = false, Problem = "not a standby" }, TimeSpan.FromSeconds(5), null);
        return node;
    }

    private ReplicaEndpoint Standby(string name)
    {
        var node = Endpoint(name);
        node.Availability.ReportProbe(new ReplicaHealth { Reachable = true, InRecovery = true, Lag = TimeSpan.Zero, LagBytes = 0 }, TimeSpan.FromSeconds(5), null);
        return node;
    }
}
