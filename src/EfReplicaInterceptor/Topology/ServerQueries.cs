using Npgsql;
using NpgsqlTypes;

namespace EfReplicaInterceptor.Topology;

/// <summary>A sample of the primary: whether it is in recovery and, when it is not, its WAL position.</summary>
internal readonly record struct PrimarySample(bool InRecovery, ulong Lsn, ulong SystemIdentifier);

/// <summary>A sample of a replica: whether it is a standby, what it has replayed and whether its WAL receiver streams.</summary>
internal readonly record struct ReplicaSample(bool InRecovery, ulong ReplayLsn, bool Streaming);

/// <summary>
/// Every statement the library itself sends to a server (the monitor's probes, read-your-writes' position captures and
/// replay checks), in one place. Each runs on a connection the caller opened and owns; none changes session state.
/// </summary>
internal static class ServerQueries
{
    // The primary's position is its WAL *insert* position, not pg_current_wal_lsn() (the write position): under asynchronous
    // commit (synchronous_commit = off, server-wide or SET LOCAL) a committed transaction's commit record can sit in the WAL
    // buffers for up to wal_writer_delay, before the write position, and a replica that replayed "the position" would not
    // have the commit. The insert position is after every record inserted so far, committed ones included.
    // See WalInsertPosition for the block and segment sizes read beside it.
    private const string PrimaryProbeSql =
        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn() END, (SELECT system_identifier FROM pg_control_system()), " + WalSizesSql;

    private const string ReplicaProbeSql =
        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')";

    private const string CapturePositionSql = "SELECT pg_current_wal_insert_lsn(), (SELECT system_identifier FROM pg_control_system()), " + WalSizesSql;

    private const string WalSizesSql = "current_setting('wal_block_size')::int, (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')";

    private const string ReplayPositionSql = "SELECT pg_last_wal_replay_lsn()";

    /// <summary>The monitor's probe of the primary.</summary>
    public static async Task<PrimarySample> ProbePrimaryAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(PrimaryProbeSql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var inRecovery = reader.GetBoolean(0);
        var lsn = inRecovery || reader.IsDBNull(1) ? 0 : WalInsertPosition.EndOfLastRecord((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1), reader.GetInt32(3), reader.GetInt64(4));
        return new PrimarySample(inRecovery, lsn, unchecked((ulong)reader.GetInt64(2)));
    }

    /// <summary>The monitor's probe of a replica.</summary>
    public static async Task<ReplicaSample> ProbeReplicaAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(ReplicaProbeSql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var replay = reader.IsDBNull(1) ? 0 : (ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1);
        return new ReplicaSample(reader.GetBoolean(0), replay, reader.GetBoolean(2));
    }

    /// <summary>
    /// The primary's WAL position now and the cluster's system identifier, on a connection of its own from
    /// <paramref name="primary"/>; with <paramref name="async"/> false every step runs synchronously.
    /// </summary>
    public static async ValueTask<(ulong Lsn, ulong SystemIdentifier)> CapturePositionAsync(NpgsqlDataSource primary, bool async, CancellationToken cancellationToken)
    {
        var connection = async ? await primary.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : primary.OpenConnection();
        await using (connection.ConfigureAwait(false))
        {
            await using var command = new NpgsqlCommand(CapturePositionSql, connection);
            await using var reader = async
                ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false)
                : command.ExecuteReader();
            _ = async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read();
            var lsn = WalInsertPosition.EndOfLastRecord((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(0), reader.GetInt32(2), reader.GetInt64(3));
            return (lsn, unchecked((ulong)reader.GetInt64(1)));
        }
    }

    /// <summary>The WAL position a replica has replayed, or null when it is not in recovery (its answer is NULL).</summary>
    public static async ValueTask<ulong?> ReadReplayPositionAsync(NpgsqlDataSource replica, bool async, CancellationToken cancellationToken)
    {
        var connection = async ? await replica.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : replica.OpenConnection();
        await using (connection.ConfigureAwait(false))
        {
            await using var command = new NpgsqlCommand(ReplayPositionSql, connection);
            var value = async ? await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteScalar();
            return value is NpgsqlLogSequenceNumber lsn ? (ulong)lsn : null;
        }
    }
}

/// <summary>
/// Turns the primary's WAL insert position into the end of the last record inserted, the position a replica reports once it
/// has replayed everything (<c>pg_last_wal_replay_lsn()</c>). They differ only when the insert position sits right after a
/// page header (the last record ended on a page boundary): then it points past the header, where no replica's replay
/// position can ever be until more WAL is written, and an idle primary would make a caught-up replica look behind forever.
/// </summary>
internal static class WalInsertPosition
{
    // MAXALIGN(sizeof(XLogPageHeaderData)) and MAXALIGN(sizeof(XLogLongPageHeaderData)) on 64-bit servers.
    private const ulong ShortPageHeader = 24;
    private const ulong LongPageHeader = 40;

    public static ulong EndOfLastRecord(ulong insertPosition, int blockSize, long segmentSize)
    {
        if (segmentSize > 0 && insertPosition % (ulong)segmentSize == LongPageHeader && insertPosition >= LongPageHeader)
        {
            return insertPosition - LongPageHeader; // the first page of a segment has the long header
        }

        if (blockSize > 0 && insertPosition % (ulong)blockSize == ShortPageHeader && insertPosition % (ulong)Math.Max(segmentSize, 1) != ShortPageHeader)
        {
            return insertPosition - ShortPageHeader;
        }

        return insertPosition;
    }
}
