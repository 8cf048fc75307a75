using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;

namespace EfReplicaInterceptor.IntegrationTests.Clusters;

/// <summary>
/// Two independent replicated clusters, each a real primary with one streaming hot standby and the shop schema, for every
/// test in this namespace. Every server logs every statement it receives (<c>log_statement = all</c>), so a test can prove
/// that a server never saw a command.
/// </summary>
[SetUpFixture]
public sealed class ClusterServers
{
    private static PostgresReplicaSet? _a;
    private static PostgresReplicaSet? _b;

    /// <summary>The first cluster (tenant "acme", cluster "orders").</summary>
    public static PostgresReplicaSet A => _a ?? throw new InvalidOperationException("The cluster servers are not running.");

    /// <summary>The second cluster (tenant "globex", cluster "analytics").</summary>
    public static PostgresReplicaSet B => _b ?? throw new InvalidOperationException("The cluster servers are not running.");

    public static IEnumerable<PostgresServer> AllServers => [A.Primary, A.Standby, B.Primary, B.Standby];

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(PostgresReplicaSet.PrimaryEnvironmentVariable)))
        {
            return; // two clusters need two server sets; external servers give one (the tests ignore themselves)
        }

        var options = new PostgresReplicaSetOptions { ExtraConfiguration = { "log_statement = 'all'" } };
        var starting = new[] { ShopServers.StartAsync(standbys: 1, options), ShopServers.StartAsync(standbys: 1, options) };
        try
        {
            await Task.WhenAll(starting);
        }
        catch
        {
            foreach (var start in starting.Where(task => task.IsCompletedSuccessfully))
            {
                await start.Result.DisposeAsync();
            }

            throw;
        }

        (_a, _b) = (starting[0].Result, starting[1].Result);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        foreach (var set in new[] { _a, _b })
        {
            if (set is not null)
            {
                await set.DisposeAsync();
            }
        }
    }

    /// <summary>Skips the calling test when the two server sets could not be started (external servers configured).</summary>
    public static void RequireTwoClusters()
    {
        if (_a is null || _b is null)
        {
            Assert.Ignore("Needs two replicated clusters started by the harness; external servers (EFREPLICA_TEST_PRIMARY) provide one.");
        }
    }

    /// <summary>Whether <paramref name="server"/>'s log holds <paramref name="text"/>: it received a statement containing it.</summary>
    public static bool ServerLogContains(PostgresServer server, string text)
    {
        var path = server.LogFile ?? throw new InvalidOperationException($"{server} has no log file.");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Contains(text, StringComparison.Ordinal);
    }
}
