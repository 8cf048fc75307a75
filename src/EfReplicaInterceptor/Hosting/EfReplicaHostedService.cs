using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EfReplicaInterceptor.Hosting;

/// <summary>
/// Starts the cluster with the host: builds it (validating its settings), runs the first health probe round so that reads
/// reach replicas from the first request, and stops monitoring when the host stops. A probe round that takes longer than
/// the start-up allows is left to finish in the background: an unreachable replica never blocks start-up.
/// </summary>
internal sealed class EfReplicaHostedService(IServiceProvider services) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var cluster = services.GetRequiredService<EfReplicaCluster>();
        var options = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<EfReplicaOptions>>().Value;
        var firstRound = cluster.RefreshHealthAsync(cancellationToken);
        var limit = options.HealthCheckTimeout + options.HealthCheckTimeout;
        await Task.WhenAny(firstRound, Task.Delay(limit, cluster.TimeProvider, cancellationToken)).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Monitoring stops with the host; the container disposes the data sources afterwards.
        await services.GetRequiredService<EfReplicaCluster>().StopMonitoringAsync().ConfigureAwait(false);
    }
}
