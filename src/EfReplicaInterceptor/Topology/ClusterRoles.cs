namespace EfReplicaInterceptor.Topology;

/// <summary>
/// Which role each listed node plays now, from the monitor's latest answers: any node may be listed as a replica, the
/// primary included (a high-availability cluster lists every node, and a switchover swaps their roles). Servers are told
/// apart by what they say of themselves (<see cref="ServerIdentity"/>), never by address. No I/O.
/// </summary>
internal static class ClusterRoles
{
    /// <summary>
    /// One running server, whatever address reached it: the same cluster (system identifier), port and postmaster start
    /// (the timeline may differ between two samples of a server promoted in between).
    /// </summary>
    public static bool IsSameServer(ServerIdentity first, ServerIdentity second)
        => first.SystemIdentifier == second.SystemIdentifier && first.Port == second.Port && first.StartedAtTicks == second.StartedAtTicks;

    /// <summary>
    /// Whether <paramref name="replica"/> is the cluster's primary, listed as a replica too: it answers as the primary, and
    /// it is the very server the primary's connection string reached (<paramref name="primary"/>, the monitor's latest
    /// answer). A listed node that answers as writable while the primary is another server is not: that is a split brain.
    /// </summary>
    public static bool IsCurrentPrimary(ReplicaEndpoint replica, ServerIdentity? primary)
        => replica.Availability.AnswersAsPrimary
            && replica.WritableServer is { } writable
            && primary is { } server
            && IsSameServer(writable, server);

    /// <summary>
    /// The one listed node that answers as the primary, or null when none does or more than one does (then which one
    /// takes writes is not known here: the split-brain detector raises it).
    /// </summary>
    public static ReplicaEndpoint? OnlyWritable(IReadOnlyList<ReplicaEndpoint> replicas)
    {
        ReplicaEndpoint? found = null;
        for (var i = 0; i < replicas.Count; i++)
        {
            var replica = replicas[i];
            if (!replica.Availability.AnswersAsPrimary || replica.WritableServer is not { } server)
            {
                continue;
            }

            if (found is not null && !IsSameServer(found.WritableServer ?? server, server))
            {
                return null;
            }

            found ??= replica;
        }

        return found;
    }
}
