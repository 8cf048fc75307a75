using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>Reads are spread over two standbys of one primary; a lagging one's share goes to the other, not to the primary.</summary>
[NonParallelizable]
public sealed class ReplicaBalancingTests
{
    private PostgresReplicaSet _servers = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await PostgresReplicaSet.StartAsync(standbys: 1);
        await _servers.Primary.ExecuteAsync(ShopContext.Schema);
        await _servers.AddStandbyAsync();
        foreach (var standby in _servers.Standbys)
        {
            await _servers.WaitForReplayAsync(standby);
        }
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [Test]
    public async Task Reads_are_spread_over_both_replicas_and_a_paused_one_hands_its_share_to_the_other()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options =>
        {
            options.MaxReplicaLag = TimeSpan.FromMilliseconds(500);
            options.HealthCheckInterval = TimeSpan.FromMilliseconds(200);
        });
        var (first, second) = (_servers.Standbys[0], _servers.Standbys[1]);

        var spread = await CountReads(cluster, 200);

        await using var writer = new TickWriter(_servers.Primary, TimeSpan.FromMilliseconds(50));
        await second.PauseReplayAsync();
        await Poll.Until(() => !cluster.Cluster.Replicas[1].IsAdmitted, TimeSpan.FromSeconds(5));
        var withOnePaused = await CountReads(cluster, 100);
        await second.ResumeReplayAsync();

        TestContext.Out.WriteLine($"both healthy: {Describe(spread)}; second paused: {Describe(withOnePaused)}");
        Assert.Multiple(() =>
        {
            Assert.That(spread.GetValueOrDefault(first.Port), Is.InRange(80, 120), "round-robin share of the first standby");
            Assert.That(spread.GetValueOrDefault(second.Port), Is.InRange(80, 120), "round-robin share of the second standby");
            Assert.That(withOnePaused.GetValueOrDefault(first.Port), Is.EqualTo(100), "the paused standby's share must go to the other standby");
            Assert.That(withOnePaused.GetValueOrDefault(_servers.Primary.Port), Is.Zero, "no read should fall back to the primary");
        });

        string Describe(Dictionary<int, int> counts) => string.Join(", ", counts.Select(c =>
            $"{(c.Key == _servers.Primary.Port ? "primary" : c.Key == first.Port ? "standby1" : "standby2")} {c.Value}"));
    }

    [Test]
    public async Task Weights_share_reads_in_proportion()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options =>
        {
            options.Replicas[0].Weight = 3;
            options.Replicas[1].Weight = 1;
        });

        var counts = await CountReads(cluster, 200);

        TestContext.Out.WriteLine($"weights 3:1 -> standby1 {counts.GetValueOrDefault(_servers.Standbys[0].Port)}, standby2 {counts.GetValueOrDefault(_servers.Standbys[1].Port)}");
        Assert.That(counts.GetValueOrDefault(_servers.Standbys[0].Port), Is.InRange(140, 160));
        Assert.That(counts.GetValueOrDefault(_servers.Standbys[1].Port), Is.InRange(40, 60));
    }

    [Test]
    public async Task Least_lag_sends_reads_to_the_replica_that_is_further_ahead()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options =>
        {
            options.LoadBalancing = LoadBalancing.LeastLag;
            options.MaxReplicaLag = TimeSpan.FromSeconds(30); // both stay in rotation; only their lag differs
            options.HealthCheckInterval = TimeSpan.FromMilliseconds(100);
        });
        var (first, second) = (_servers.Standbys[0], _servers.Standbys[1]);

        var whileEqual = await CountReads(cluster, 100);
        Dictionary<int, int> whileSecondBehind;
        await using (var writer = new TickWriter(_servers.Primary, TimeSpan.FromMilliseconds(50)))
        {
            await second.PauseReplayAsync();
            await Poll.Until(() => cluster.Cluster.Replicas[1].Health.Lag > TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(5));
            whileSecondBehind = await CountReads(cluster, 100);
            await second.ResumeReplayAsync();
        }

        TestContext.Out.WriteLine($"least lag, both caught up: {string.Join(", ", whileEqual.Values)}; second paused: standby1 {whileSecondBehind.GetValueOrDefault(first.Port)}, standby2 {whileSecondBehind.GetValueOrDefault(second.Port)}");
        Assert.That(whileEqual.GetValueOrDefault(first.Port) + whileEqual.GetValueOrDefault(second.Port), Is.EqualTo(100));
        Assert.That(whileSecondBehind.GetValueOrDefault(first.Port), Is.EqualTo(100), "every read should go to the replica with less lag");
    }

    private static async Task<Dictionary<int, int>> CountReads(TestCluster cluster, int reads)
    {
        var counts = new Dictionary<int, int>();
        for (var i = 0; i < reads; i++)
        {
            await using var context = cluster.NewContext();
            var port = (await context.WhereAmI().SingleAsync()).Port;
            counts[port] = counts.GetValueOrDefault(port) + 1;
        }

        return counts;
    }
}
