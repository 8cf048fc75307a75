using System.Runtime.CompilerServices;
using EfReplicaInterceptor.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>What the monitor announces of each replica's changes, and what it knows of the primary's identity for other readers.</summary>
internal sealed partial class ClusterMonitor
{
    private volatile StrongBox<ServerIdentity>? _primaryAnswer; // the primary's latest answer, for readers outside the round
    private readonly SemaphoreSlim _primaryWake = new(0, 1); // a replica's turn asks for the primary's turn now

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
                    WakePrimaryTurn(); // the primary's string reaches no primary, and this node is one now: look again at once
                }

                break;
            case AvailabilityChange.NowStandby:
                Log.ReplicaNowStandby(_logger, replica.Name, _cluster, health.Lag!.Value.TotalSeconds);
                break;
        }
    }

    /// <summary>
    /// At the end of the primary's turn, after split-brain detection has probed each host of the primary's connection string on
    /// its own: when the primary's string reached no primary, one listed node answers as one, and no other server of the
    /// cluster accepts writes (a promotion, not a split brain), the primary's hosts are checked again. Decided here rather than
    /// when a probe fails: a primary that is only slow to answer (a loaded machine) beside a promoted standby is a split brain,
    /// and clearing Npgsql's host states then would send the primary's sessions to the first listed writable host.
    /// </summary>
    private void RecheckPrimaryHostsIfPromoted()
    {
        if (_primaryProblem is not null && _splitBrainProblem is null && _writableServers <= 1 && ClusterRoles.OnlyWritable(Replicas) is not null)
        {
            RecheckPrimaryHosts();
        }
    }

    private void WakePrimaryTurn()
    {
        try
        {
            if (_primaryWake.CurrentCount == 0)
            {
                _primaryWake.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // another replica's turn woke it first
        }
        catch (ObjectDisposedException)
        {
            // the monitor stopped
        }
    }

    /// <summary>The pause between two turns of the primary: the interval, or less when a replica's turn wakes it.</summary>
    private async Task PausePrimaryAsync(CancellationToken token)
    {
        using var pause = CancellationTokenSource.CreateLinkedTokenSource(token);
        await Task.WhenAny(_primaryWake.WaitAsync(pause.Token), Task.Delay(_interval, _timeProvider, pause.Token)).ConfigureAwait(false);
        await pause.CancelAsync().ConfigureAwait(false);
        token.ThrowIfCancellationRequested();
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
