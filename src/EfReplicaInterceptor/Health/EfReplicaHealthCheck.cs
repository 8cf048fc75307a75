using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace EfReplicaInterceptor.Health;

/// <summary>
/// Readiness from the replica monitor's latest view, without touching a server: <see cref="HealthStatus.Unhealthy"/> when
/// more than one server of the cluster accepts writes (split brain) or the primary does not answer as a primary,
/// <see cref="HealthStatus.Degraded"/> while any listed node is neither a standby in rotation nor the primary itself,
/// otherwise <see cref="HealthStatus.Healthy"/>. Any node may be listed as a replica whatever its role (an HA cluster lists
/// every node): the one that is the primary now (the same server as the primary's connection string reaches, told by its
/// identity) counts as healthy. The data lists each server's state and lag.
/// </summary>
internal sealed class EfReplicaHealthCheck(EfReplicaCluster cluster) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var primaryProblem = cluster.Monitor.PrimaryProblem;
        data["primary"] = primaryProblem ?? "ok";
        var splitBrain = cluster.Monitor.SplitBrain;
        data["writable-servers"] = cluster.Monitor.WritableServers;
        if (splitBrain is not null)
        {
            data["split-brain"] = splitBrain;
        }

        var primaryServer = cluster.Monitor.PrimaryServer;
        var outOfRotation = new List<string>();
        var standbys = 0;
        var primaries = 0;
        var replicas = cluster.Replicas; // one snapshot of the replica set for the whole report
        foreach (var replica in replicas)
        {
            var health = replica.Health;
            if (replica.IsAdmitted)
            {
                standbys++;
                data[$"replica:{replica.Name}"] = health.Lag is { } lag ? $"in rotation, lag {lag.TotalSeconds:0.###} s, {health.LagBytes} bytes" : "in rotation";
            }
            else if (ClusterRoles.IsCurrentPrimary(replica, primaryServer))
            {
                primaries++;
                data[$"replica:{replica.Name}"] = "the primary: takes no standby reads while it is";
            }
            else
            {
                outOfRotation.Add(replica.Name);
                data[$"replica:{replica.Name}"] = $"out of rotation: {health.Problem ?? "paused after failed reads"}";
            }
        }

        HealthCheckResult result;
        if (splitBrain is not null)
        {
            result = HealthCheckResult.Unhealthy($"Cluster '{cluster.Name}': split brain: {splitBrain}. Fence all but one of them", data: data);
        }
        else if (primaryProblem is not null)
        {
            result = HealthCheckResult.Unhealthy($"Cluster '{cluster.Name}': the primary is not healthy: {primaryProblem}", data: data);
        }
        else if (outOfRotation.Count > 0)
        {
            result = HealthCheckResult.Degraded($"Cluster '{cluster.Name}': {outOfRotation.Count} of {replicas.Count} replica(s) out of rotation ({string.Join(", ", outOfRotation)}); their reads go elsewhere", data: data);
        }
        else
        {
            var listedPrimary = primaries > 0 ? "; the primary is listed as a replica too" : string.Empty;
            result = HealthCheckResult.Healthy($"Cluster '{cluster.Name}': primary and {standbys} standby(s) in rotation healthy{listedPrimary}", data);
        }

        return Task.FromResult(result);
    }
}
