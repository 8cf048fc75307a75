using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>One real primary and one streaming hot standby for every routing test in this namespace.</summary>
[SetUpFixture]
public sealed class RoutingServers
{
    private static PostgresReplicaSet? _set;

    public static PostgresReplicaSet Set => _set ?? throw new InvalidOperationException("The routing servers are not running.");

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _set = await ShopServers.StartAsync();
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_set is not null)
        {
            await _set.DisposeAsync();
        }
    }
}
