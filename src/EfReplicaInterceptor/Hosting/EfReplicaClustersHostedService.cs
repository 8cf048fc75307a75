using EfReplicaInterceptor.Clusters;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace EfReplicaInterceptor.Hosting;

/// <summary>
/// Starts the named clusters with the host: builds each (its settings were validated just before), runs their first health
/// probe rounds together so that reads reach replicas from the first request, and gives up waiting after twice the longest
/// probe timeout (an unreachable replica never blocks start-up).
/// </summary>
internal sealed class EfReplicaClustersHostedService(IServiceProvider services, string listPath, IReadOnlyList<string> names) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = services.GetRequiredService<IOptionsMonitor<ClusterSet>>().Get(listPath);
        var rounds = new List<Task>(names.Count);
        var limit = TimeSpan.Zero;
        var clock = TimeProvider.System;
        foreach (var name in names)
        {
            var cluster = services.GetRequiredKeyedService<EfReplicaCluster>(name);
            rounds.Add(cluster.RefreshHealthAsync(cancellationToken));
            clock = cluster.TimeProvider; // the clusters of one host share the host's clock
            if (settings.Clusters.TryGetValue(name, out var definition) && definition.Options.HealthCheckTimeout > limit)
            {
                limit = definition.Options.HealthCheckTimeout;
            }
        }

        await Task.WhenAny(Task.WhenAll(rounds), Task.Delay(limit + limit, clock, cancellationToken)).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
