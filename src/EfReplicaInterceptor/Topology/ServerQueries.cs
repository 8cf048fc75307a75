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
    private const string PrimaryProbeSql =
        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn() END, (SELECT system_identifier FROM pg_control_system())";

    private const string ReplicaProbeSql =
        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')";

    private const string CapturePositionSql = "SELECT pg_current_wal_insert_lsn(), (SELECT system_identifier FROM pg_control_system())";

    private const string ReplayPositionSql = "SELECT pg_last_wal_replay_lsn()";

    /// <summary>The monitor's probe of the primary.</summary>
    public static async Task<PrimarySample> ProbePrimaryAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(PrimaryProbeSql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var inRecovery = reader.GetBoolean(0);
        var lsn = inRecovery || reader.IsDBNull(1) ? 0 : (ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1);
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
            var lsn = (ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(0);
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
