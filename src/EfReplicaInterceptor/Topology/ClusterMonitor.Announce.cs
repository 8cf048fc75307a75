using System.Runtime.CompilerServices;
using EfReplicaInterceptor.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>What the monitor announces of each replica's changes, and what it knows of the primary's identity for other readers.</summary>
internal sealed partial class ClusterMonitor
{
    private volatile StrongBox<ServerIdentity>? _primaryAnswer; // the primary's latest answer, for readers outside the round

    /// <summary>The server that answered the primary's latest probe as a primary, or null (unreachable, or a standby).</summary>
    public ServerIdentity? PrimaryServer => _primaryAnswer?.Value;

    private void Announce(ReplicaEndpoint replica, AvailabilityChange change, ReplicaHealth health, bool wasAdmitted)
    {
        switch (change)
        {
            case AvailabilityChange.Left:
                Log.ReplicaLeftRotation(_logger, replica.Name, _cluster, health.Problem!);
                break;
            case AvailabilityChange.KeptOut:
                Log.ReplicaKeptOut(_logger, replica.Name, _cluster, health.Problem!);
                break;
            case AvailabilityChange.Rejoined when wasAdmitted:
                // The pause after failed reads ended: the monitor found the replica healthy.
                Log.ReplicaRejoinedRotation(_logger, replica.Name, _cluster, $"a health probe found it healthy again (lag {health.Lag!.Value.TotalSeconds:0.###} s)");
                break;
            case AvailabilityChange.Rejoined:
                Log.ReplicaRejoinedRotation(_logger, replica.Name, _cluster, $"lag {health.Lag!.Value.TotalSeconds:0.###} s, {health.LagBytes} bytes");
                break;
            case AvailabilityChange.Admitted:
                Log.ReplicaAdmitted(_logger, replica.Name, _cluster, health.Lag!.Value.TotalSeconds);
                break;
            case AvailabilityChange.NowPrimary:
                Log.ReplicaAnswersAsPrimary(_logger, replica.Name, _cluster);
                if (_primaryProblem is not null)
                {
                    RecheckPrimaryHosts(); // the primary's string reaches no primary, and this node is one now
                }

                break;
            case AvailabilityChange.NowStandby:
                Log.ReplicaNowStandby(_logger, replica.Name, _cluster, health.Lag!.Value.TotalSeconds);
                break;
        }
    }

    /// <summary>The primary's probe found no primary: if a listed node answers as one, the primary's hosts are checked again.</summary>
    private void PrimaryUnanswered()
    {
        if (ClusterRoles.OnlyWritable(Replicas) is not null)
        {
            RecheckPrimaryHosts();
        }
    }

    /// <summary>
    /// The primary's connection string reaches no primary while a listed node answers as one (a promotion): a multi-host
    /// primary connection string forgets what it knew of its hosts (Npgsql keeps a host it last saw as a standby out for
    /// <c>Host Recheck Seconds</c>, 10 s by default), so that writes reach the new primary as soon as it is one rather than
    /// when that cache expires. Never while the primary's string reaches a primary: with two writable servers (a split
    /// brain) Npgsql would then take the first listed, possibly the promoted one.
    /// </summary>
    private void RecheckPrimaryHosts()
    {
        if (_primary.Server.DataSource is NpgsqlMultiHostDataSource multiHost)
        {
            multiHost.ClearDatabaseStates();
        }
    }
}
