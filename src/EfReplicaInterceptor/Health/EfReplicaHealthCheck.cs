using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace EfReplicaInterceptor.Health;

/// <summary>
/// Readiness from the replica monitor's latest view, without touching a server: <see cref="HealthStatus.Unhealthy"/> when
/// more than one server of the cluster accepts writes (split brain) or the primary does not answer as a primary, <see cref="HealthStatus.Degraded"/> while any replica is out of rotation,
/// otherwise <see cref="HealthStatus.Healthy"/>. The data lists each server's state and lag.
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

        var outOfRotation = new List<string>();
        var replicas = cluster.Replicas; // one snapshot of the replica set for the whole report
        foreach (var replica in replicas)
        {
            var health = replica.Health;
            if (replica.IsAdmitted)
            {
                data[$"replica:{replica.Name}"] = health.Lag is { } lag ? $"in rotation, lag {lag.TotalSeconds:0.###} s, {health.LagBytes} bytes" : "in rotation";
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
            result = HealthCheckResult.Healthy($"Cluster '{cluster.Name}': primary and {replicas.Count} replica(s) healthy", data);
        }

        return Task.FromResult(result);
    }
}
