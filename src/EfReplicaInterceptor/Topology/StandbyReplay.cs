namespace EfReplicaInterceptor.Topology;

/// <summary>
/// A capture of the primary's position: its WAL insert position (the end of its last record), its cluster's system
/// identifier, and what the primary knows of its streaming standbys' replay, read in the same statement (null when it has
/// none, or the role may not see them), and the address the capture's connection reached the primary at (null over a unix
/// socket): a row counts only for a standby whose WAL receiver is connected to that address (<see cref="WalReceiver.StreamsFrom"/>).
/// </summary>
internal readonly record struct PrimaryCapture(ulong Lsn, ulong SystemIdentifier, StandbyReplay[]? Standbys = null, TcpAddress? Address = null);

/// <summary>
/// One walsender row of the primary's <c>pg_stat_replication</c> (state <c>streaming</c>, physical): the application name the
/// standby's WAL receiver gave, what the standby reported it had replayed (<c>replay_lsn</c>) and when it sent that report
/// (<c>reply_time</c>, the standby's own clock, as <see cref="DateTime.Ticks"/>). Any of them null when the primary does not
/// show it (a role without <c>pg_read_all_stats</c>; a WAL client that replays nothing).
/// </summary>
internal readonly record struct StandbyReplay(string? Name, ulong? ReplayLsn, long? ReportedAtTicks);

/// <summary>
/// Feeds the primary's view of its standbys' replay into the replicas it can be told to belong to, so that a read after a
/// write can take a standby that has replayed the write without asking it (no replay check). Under synchronous replication
/// with <c>remote_apply</c> the synchronous standby's row is at the commit as soon as the commit returns (the primary
/// releases a waiting commit only after it recorded the standby's reply), so a capture taken after the commit usually shows
/// it there.
/// </summary>
/// <remarks>
/// A row counts only when it is certain whose it is and in which run: its name is the WAL receiver name one configured
/// replica said is its own (<see cref="ReplicaEndpoint.WalReceiverName"/>, from its probe) and no other replica said, and
/// no other row carries it (standbys left at the default name <c>walreceiver</c>, or two with one <c>cluster_name</c>, are
/// all ignored); that replica's WAL receiver streams from the primary itself, not from another standby that carries the
/// same name (<see cref="WalReceiver.StreamsFrom"/>: connected to the address the capture reached the primary at); and it was sent by the run of the server the replica's knowledge is about
/// (<see cref="ReplicaEndpoint.ObserveReportedReplay"/>). A row's replay position is a lower bound of what that standby has
/// replayed (it reports after replaying), never an upper bound of what reads on it saw: it raises what the replica is known
/// to have replayed, not the time the knowledge holds for. It does not lower any requirement: a read after a write still
/// needs the captured insert position, which is at or after everything the scope wrote or may have seen (the write's own
/// commit record is not known to the client, and other sessions' records may follow it), so under concurrent writers a
/// row taken at the capture is often just short of it, and the replay check remains.
/// </remarks>
internal static class StandbyReplayReports
{
    /// <summary>
    /// Feeds <paramref name="rows"/> (from a capture sent at <paramref name="sentAt"/> that reached the primary at
    /// <paramref name="primary"/>) to <paramref name="replicas"/>; how many rows were fed.
    /// </summary>
    public static int Feed(StandbyReplay[]? rows, IReadOnlyList<ReplicaEndpoint> replicas, long sentAt, TcpAddress? primary)
    {
        if (rows is null)
        {
            return 0;
        }

        var fed = 0;
        for (var i = 0; i < rows.Length; i++)
        {
            var row = rows[i];
            if (row is { Name: { } name, ReplayLsn: { } lsn, ReportedAtTicks: { } reportedAt }
                && OnlyRowNamed(rows, name, i)
                && OnlyReplicaNamed(replicas, name) is ({ } replica, { } receiver)
                && receiver.StreamsFrom(primary)
                && replica.ObserveReportedReplay(lsn, reportedAt, sentAt))
            {
                fed++;
            }
        }

        return fed;
    }

    private static bool OnlyRowNamed(StandbyReplay[] rows, string name, int index)
    {
        for (var j = 0; j < rows.Length; j++)
        {
            if (j != index && string.Equals(rows[j].Name, name, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The one replica whose WAL receiver has <paramref name="name"/>, with that receiver as read (name and upstream together).</summary>
    private static (ReplicaEndpoint? Replica, WalReceiver? Receiver) OnlyReplicaNamed(IReadOnlyList<ReplicaEndpoint> replicas, string name)
    {
        (ReplicaEndpoint?, WalReceiver?) found = (null, null);
        for (var i = 0; i < replicas.Count; i++)
        {
            var receiver = replicas[i].WalReceiver;
            if (string.Equals(receiver?.Name, name, StringComparison.Ordinal))
            {
                if (found.Item1 is not null)
                {
                    return (null, null);
                }

                found = (replicas[i], receiver);
            }
        }

        return found;
    }
}
