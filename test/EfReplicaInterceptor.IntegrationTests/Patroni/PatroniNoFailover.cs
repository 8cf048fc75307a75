using System.Diagnostics;
using System.Text.Json.Nodes;
using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>
/// Patroni's <c>nofailover</c> tag on a member, which the harness does not offer: set in the member's configuration file
/// (<c>&lt;cluster folder&gt;/&lt;member&gt;.yml</c>, JSON) and loaded with <c>POST /reload</c>. A tagged member is never promoted, so
/// a scenario decides which standby a failover promotes. The harness rewrites the file (and drops the tag) on its next
/// <see cref="PatroniCluster.SetReplayDelayAsync"/> or <see cref="PatroniCluster.SetNoLoadBalanceAsync"/> for the member.
/// </summary>
public static class PatroniNoFailover
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>Sets or clears <c>nofailover</c> on <paramref name="member"/> and waits (up to 30 s) until <c>GET /cluster</c> shows it.</summary>
    public static async Task SetAsync(PatroniCluster cluster, PatroniMember member, bool noFailover)
    {
        var file = Path.Combine(cluster.Directory, member.Name + ".yml");
        var configuration = JsonNode.Parse(await File.ReadAllTextAsync(file))!.AsObject();
        var tags = configuration["tags"] as JsonObject ?? [];
        configuration["tags"] = tags;
        tags["nofailover"] = noFailover;

        // Rewrite in place: the file keeps the owner and mode the harness gave it (Patroni may run as another user).
        await File.WriteAllTextAsync(file, configuration.ToJsonString());
        using (var response = await Http.PostAsync(new Uri(member.RestApiUrl, "reload"), content: null))
        {
            Assert.That((int)response.StatusCode, Is.LessThan(300), $"POST /reload to {member.Name}: {await response.Content.ReadAsStringAsync()}");
        }

        var clock = Stopwatch.StartNew();
        while (true)
        {
            var state = (await cluster.GetClusterAsync()).Member(member.Name);
            var shown = state is not null && state.Tags.TryGetValue("nofailover", out var value) && value == "true";
            if (shown == noFailover)
            {
                return;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                Assert.Fail($"{member.Name} did not show nofailover = {noFailover} within 30 s: {state}");
            }

            await Task.Delay(100);
        }
    }
}
