using System.Text.Json;
using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>
/// Parsing Patroni's <c>GET /cluster</c> document and checking the cluster's settings, without a cluster. The documents are
/// recorded from Patroni 3.0.2 (Debian bookworm) by <see cref="PatroniClusterTests"/>.
/// </summary>
public sealed class PatroniClusterStateTests
{
    private static readonly Uri Source = new("http://127.0.0.1:8008/cluster");

    // Recorded from Patroni 3.0.2 with member1 tagged noloadbalance.
    private const string Recorded =
        """
        {"members": [{"name": "member1", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:40635/patroni", "host": "127.0.0.1", "port": 33347, "timeline": 1, "tags": {"noloadbalance": true}, "lag": 0}, {"name": "member2", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:38991/patroni", "host": "127.0.0.1", "port": 46233, "timeline": 1}, {"name": "member3", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:46671/patroni", "host": "127.0.0.1", "port": 40603, "timeline": 1, "lag": 0}]}
        """;

    [Test]
    public void A_recorded_document_gives_the_leader_the_replicas_their_ports_lag_and_tags()
    {
        var state = PatroniClusterState.Parse(Recorded, Source);

        Assert.That(state.Members.Select(member => member.Name), Is.EqualTo(new[] { "member1", "member2", "member3" }));
        Assert.That(state.Leader!.Name, Is.EqualTo("member2"));
        Assert.That(state.Leader.LagBytes, Is.Null, "the leader has no lag field");
        Assert.That(state.Source, Is.EqualTo(Source));
        Assert.That(state.Json, Is.EqualTo(Recorded));

        var tagged = state.Member("member1")!;
        Assert.That((tagged.IsReplica, tagged.IsRunning, tagged.IsLeader), Is.EqualTo((true, true, false)));
        Assert.That((tagged.Host, tagged.Port, tagged.Timeline, tagged.LagBytes), Is.EqualTo(("127.0.0.1", (int?)33347, (int?)1, (long?)0)));
        Assert.That(tagged.ApiUrl, Is.EqualTo("http://127.0.0.1:40635/patroni"));
        Assert.That(tagged.NoLoadBalance, Is.True);
        Assert.That(tagged.Tags["noloadbalance"], Is.EqualTo("true"));
        Assert.That(state.Member("member3")!.NoLoadBalance, Is.False);
        Assert.That(state.Member("member3")!.Tags, Is.Empty);
        Assert.That(state.Member("nobody"), Is.Null);
    }

    [Test]
    public void During_a_failover_there_is_no_leader_and_an_unknown_lag_is_null()
    {
        const string json =
            """
            {"members": [{"name": "a", "role": "replica", "state": "stopped", "api_url": "http://127.0.0.1:1/patroni", "host": "127.0.0.1", "port": 5432, "lag": "unknown"},
                         {"name": "b", "role": "sync_standby", "state": "streaming", "host": "127.0.0.1", "port": 5433, "timeline": 3, "lag": 1024, "tags": {"nofailover": true, "zone": "x"}}]}
            """;

        var state = PatroniClusterState.Parse(json, Source);

        Assert.That(state.Leader, Is.Null);
        var stopped = state.Member("a")!;
        Assert.That((stopped.IsRunning, stopped.LagBytes, stopped.Timeline), Is.EqualTo((false, (long?)null, (int?)null)));
        var sync = state.Member("b")!;
        Assert.That((sync.IsReplica, sync.IsRunning, sync.LagBytes), Is.EqualTo((true, true, (long?)1024)));
        Assert.That(sync.Tags, Is.EquivalentTo(new Dictionary<string, string> { ["nofailover"] = "true", ["zone"] = "x" }));
    }

    [TestCase("{}")]
    [TestCase("[]")]
    [TestCase("{\"members\": {}}")]
    [TestCase("{\"members\": [{\"role\": \"leader\"}]}")]
    public void A_document_that_is_not_a_cluster_is_refused(string json) =>
        Assert.Throws<JsonException>(() => PatroniClusterState.Parse(json, Source));

    [Test]
    public void Settings_Patroni_would_refuse_are_refused_naming_the_setting()
    {
        var tooSlow = new PatroniClusterOptions { TimeToLive = TimeSpan.FromSeconds(10), LoopWait = TimeSpan.FromSeconds(3), RetryTimeout = TimeSpan.FromSeconds(4) };
        var exception = Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await PatroniCluster.StartAsync(3, tooSlow));
        Assert.That(exception!.Message, Does.Contain("LoopWait").And.Contain("RetryTimeout").And.Contain("TimeToLive"));

        var fractional = new PatroniClusterOptions { TimeToLive = TimeSpan.FromMilliseconds(10_500) };
        Assert.That(Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await PatroniCluster.StartAsync(3, fractional))!.Message, Does.Contain("whole"));

        Assert.ThrowsAsync<ArgumentException>(async () => await PatroniCluster.StartAsync(3, new PatroniClusterOptions { DatabaseName = "" }));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await PatroniCluster.StartAsync(0));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await PatroniCluster.StartAsync(10));
    }
}
