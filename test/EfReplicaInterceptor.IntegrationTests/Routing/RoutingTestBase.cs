using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>A fresh cluster (and recorder) per test over the shared servers; assertions ask the servers.</summary>
public abstract class RoutingTestBase
{
    private TestCluster? _cluster;

    protected static PostgresReplicaSet Servers => RoutingServers.Set;

    protected TestCluster Cluster => _cluster ?? throw new InvalidOperationException("No cluster.");

    protected RoutingRecorder Recorder => Cluster.Recorder;

    protected virtual Task<TestCluster> CreateCluster() => TestCluster.CreateAsync(Servers);

    [SetUp]
    public async Task CreateTestCluster() => _cluster = await CreateCluster();

    [TearDown]
    public async Task DisposeTestCluster()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    protected static async Task<ServerSide> WhereAmI(ShopContext context, bool async)
        => async ? await context.WhereAmI().SingleAsync() : context.WhereAmI().Single();

    protected static void AssertOnReplica(ServerSide side)
    {
        Assert.That(side.Port, Is.EqualTo(Servers.Standby.Port), "expected the standby to run the query");
        Assert.That(side.InRecovery, Is.True, "the server that ran the query is not in recovery");
    }

    protected static void AssertOnPrimary(ServerSide side)
    {
        Assert.That(side.Port, Is.EqualTo(Servers.Primary.Port), "expected the primary to run the query");
        Assert.That(side.InRecovery, Is.False, "the server that ran the query is in recovery");
    }

    protected void AssertLastDecision(string target, string reason)
    {
        var last = Recorder.Last;
        Assert.That((last.Target, last.Reason), Is.EqualTo((target, reason)), $"last decision: {last}");
    }

    protected static async Task<int> PrimaryCount(string where)
        => checked((int)await Servers.Primary.ScalarAsync<long>($"SELECT count(*) FROM people WHERE {where}"));

    protected static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}";
}
