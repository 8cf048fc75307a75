using System.Net;
using EfReplicaInterceptor.Failover;
using Npgsql;
using NpgsqlTypes;

namespace EfReplicaInterceptor.Topology;

/// <summary>A sample of the primary: whether it is in recovery and, when it is not, its WAL position; which server answered.</summary>
internal readonly record struct PrimarySample(bool InRecovery, ulong Lsn, ulong SystemIdentifier, ServerIdentity Server);

/// <summary>
/// A sample of a replica: whether it is a standby, what it has replayed and whether its WAL receiver streams; which server
/// answered; its WAL receiver (the application name it gives its upstream, when it can be known exactly, see
/// <see cref="WalReceiverName"/>, and the upstream it is connected to).
/// </summary>
internal readonly record struct ReplicaSample(bool InRecovery, ulong ReplayLsn, bool Streaming, ServerIdentity Server, WalReceiver? WalReceiver = null);

/// <summary>
/// Which server answered, as the server itself says: its cluster's system identifier (shared by a primary and every
/// standby cloned from it, so it alone cannot tell them apart), the port it listens on and when its postmaster started
/// (together: one running server, whatever address reached it), and its timeline while it accepts writes (a promoted
/// standby moves to a new one; 0 while in recovery).
/// </summary>
internal readonly record struct ServerIdentity(ulong SystemIdentifier, int Port, long StartedAtTicks, int Timeline);

/// <summary>
/// Every statement the library itself sends to a server (the monitor's probes, read-your-writes' position captures and
/// replay checks), in one place. Each runs on a connection the caller opened and owns; none changes session state.
/// </summary>
internal static partial class ServerQueries
{
    // Columns 3..6 of every probe: the answering server's identity (see ServerIdentity). The timeline is the first 8 hex
    // digits of the current WAL file's name, which pg_walfile_name refuses to compute in recovery.
    private const string IdentityColumns =
        "(SELECT system_identifier FROM pg_control_system()), coalesce(inet_server_port(), 0), pg_postmaster_start_time(), "
        + "CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END";

    // The primary's position is its WAL *insert* position, not pg_current_wal_lsn() (the write position): under asynchronous
    // commit (synchronous_commit = off, server-wide or SET LOCAL) a committed transaction's commit record can sit in the WAL
    // buffers for up to wal_writer_delay, before the write position, and a replica that replayed "the position" would not
    // have the commit. The insert position is after every record inserted so far, committed ones included. Columns 7 and 8:
    // the block and segment sizes WalInsertPosition needs.
    private const string PrimaryProbeSql =
        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn() END, NULL, " + IdentityColumns + ", " + WalSizesSql;

    // Columns 7 and 8: the WAL receiver's connection options and cluster_name, from which WalReceiverName tells the
    // application name the primary shows for this standby in pg_stat_replication (conninfo is NULL without pg_read_all_stats).
    // Columns 9 and 10: the upstream the receiver is connected to (sender_host is the host it dialled, as written in
    // primary_conninfo: an IP address, a host name or a unix socket directory; both NULL without pg_read_all_stats or while
    // not connected); column 11: the address this probe's connection reached the standby at (NULL over a unix socket).
    // See WalReceiver.StreamsFrom.
    private const string ReplicaProbeSql =
        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'), " + IdentityColumns
        + ", r.conninfo, current_setting('cluster_name'), r.sender_host, r.sender_port, host(inet_server_addr()) "
        + "FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true";

    private const string HostProbeSql = "SELECT pg_is_in_recovery(), NULL, NULL, " + IdentityColumns;

    private const string CapturePositionSql = "SELECT pg_current_wal_insert_lsn(), (SELECT system_identifier FROM pg_control_system()), " + WalSizesSql + StandbyReplayColumns;

    // Tests only (EfReplicaOptions.CaptureWritePositionForTests): the write position, the bug under asynchronous commit.
    private const string CaptureWritePositionSql = "SELECT pg_current_wal_lsn(), (SELECT system_identifier FROM pg_control_system()), " + WalSizesSql + StandbyReplayColumns;

    // Columns 4..6 of a capture: the primary's own view of its streaming physical standbys (StandbyReplay), one array element
    // per walsender, NULL arrays when there is none. What pg_stat_replication shows, scanned once: the walsenders first
    // (usually a handful), then each one's own activity entry (its application name; datid is NULL for a physical
    // walsender, set for a logical one, whose position is not a standby's replay). The walsender columns are NULL for a
    // role without pg_read_all_stats (pg_monitor has it), so such a role sees no row at all: state is NULL. The positions
    // come as numeric (Npgsql reads no pg_lsn[] with NULL elements). Columns 7 and 8: the address the capture's connection
    // reached the primary at (NULL over a unix socket), which a standby's WAL receiver must be connected to for its row to
    // count (WalReceiver.StreamsFrom).
    private const string StandbyReplayColumns =
        ", s.names, s.replays, s.replies, host(inet_server_addr()), inet_server_port() FROM (SELECT array_agg(a.application_name) AS names, array_agg(w.replay_lsn - '0/0') AS replays, array_agg(w.reply_time) AS replies "
        + "FROM pg_stat_get_wal_senders() w, LATERAL pg_stat_get_activity(w.pid) a WHERE w.state = 'streaming' AND a.datid IS NULL) s";

    private const string WalSizesSql = "current_setting('wal_block_size')::int, (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')";

    private const string ReplayPositionSql = "SELECT pg_last_wal_replay_lsn(), pg_postmaster_start_time()";

    /// <summary>The monitor's probe of the primary.</summary>
    public static async Task<PrimarySample> ProbePrimaryAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(PrimaryProbeSql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var inRecovery = reader.GetBoolean(0);
        var lsn = inRecovery || reader.IsDBNull(1) ? 0 : WalInsertPosition.EndOfLastRecord((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1), reader.GetInt32(7), reader.GetInt64(8));
        var server = ReadIdentity(reader);
        return new PrimarySample(inRecovery, lsn, server.SystemIdentifier, server);
    }

    /// <summary>
    /// The monitor's probe of one host of a multi-host primary connection string: whether it accepts writes, and which
    /// server it is.
    /// </summary>
    public static async Task<(bool InRecovery, ServerIdentity Server)> ProbeHostAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(HostProbeSql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return (reader.GetBoolean(0), ReadIdentity(reader));
    }

    private static ServerIdentity ReadIdentity(NpgsqlDataReader reader)
    {
        var timeline = reader.IsDBNull(6) ? 0 : int.Parse(reader.GetString(6), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        return new ServerIdentity(unchecked((ulong)reader.GetInt64(3)), reader.GetInt32(4), reader.GetFieldValue<DateTime>(5).Ticks, timeline);
    }

    /// <summary>The monitor's probe of a replica.</summary>
    public static async Task<ReplicaSample> ProbeReplicaAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(ReplicaProbeSql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var replay = reader.IsDBNull(1) ? 0 : (ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1);
        var name = reader.IsDBNull(7) ? null : WalReceiverName.FromConnectionInfo(reader.GetString(7), reader.GetString(8));
        var receiver = name is null ? null : new WalReceiver(
            name,
            TcpAddress.Parse(reader.IsDBNull(9) ? null : reader.GetString(9), reader.IsDBNull(10) ? null : reader.GetInt32(10)),
            !reader.IsDBNull(11) && IPAddress.TryParse(reader.GetString(11), out var reachedAt) && IPAddress.IsLoopback(reachedAt));
        return new ReplicaSample(reader.GetBoolean(0), replay, reader.GetBoolean(2), ReadIdentity(reader), receiver);
    }

    /// <summary>
    /// The primary's WAL position now and the cluster's system identifier, with what the primary knows of its standbys'
    /// replay (in the same statement: no extra round trip), within the read deadline: on <paramref name="open"/> when the
    /// caller has the primary's connection open and idle (EF's, so that a unit of work holds one primary connection, not
    /// two), else on a connection of its own from <paramref name="primary"/>; with <paramref name="async"/> false every step
    /// runs synchronously. With <paramref name="writePosition"/> (tests only) the write position instead of the insert position.
    /// </summary>
    public static ValueTask<PrimaryCapture> CapturePositionAsync(WatchedServer primary, NpgsqlConnection? open, bool async, CancellationToken cancellationToken, bool writePosition = false)
        => RunAsync(primary, open, writePosition ? CaptureWritePositionSql : CapturePositionSql, static reader =>
        {
            var lsn = WalInsertPosition.EndOfLastRecord((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(0), reader.GetInt32(2), reader.GetInt64(3));
            var address = TcpAddress.Parse(reader.IsDBNull(7) ? null : reader.GetString(7), reader.IsDBNull(8) ? null : reader.GetInt32(8));
            return new PrimaryCapture(lsn, unchecked((ulong)reader.GetInt64(1)), reader.IsDBNull(4) ? null : ReadStandbys(reader), address);
        }, async, cancellationToken);

    /// <summary>
    /// The capture's walsender rows (only when there are rows: the arrays are NULL otherwise); null when they cannot be read
    /// (an unexpected value must cost the shortcut, never the capture).
    /// </summary>
    private static StandbyReplay[]? ReadStandbys(NpgsqlDataReader reader)
    {
        try
        {
            var names = reader.GetFieldValue<string?[]>(4);
            var replays = reader.GetFieldValue<decimal?[]>(5);
            var replies = reader.GetFieldValue<DateTime?[]>(6);
            if (replays.Length != names.Length || replies.Length != names.Length)
            {
                return null;
            }

            var rows = new StandbyReplay[names.Length];
            for (var i = 0; i < rows.Length; i++)
            {
                rows[i] = new StandbyReplay(names[i], replays[i] is { } lsn and >= 0 and <= ulong.MaxValue ? (ulong)lsn : null, replies[i]?.Ticks);
            }

            return rows;
        }
        catch (InvalidCastException)
        {
            return null;
        }
    }

    /// <summary>
    /// The WAL position a replica has replayed (null when it is not in recovery: its answer is NULL), and when its
    /// postmaster started (which run of the server answered), within the read deadline.
    /// </summary>
    public static ValueTask<(ulong? Lsn, long StartedAtTicks)> ReadReplayPositionAsync(WatchedServer replica, bool async, CancellationToken cancellationToken)
        => RunAsync(replica, open: null, ReplayPositionSql, static reader =>
            (reader.IsDBNull(0) ? null : (ulong?)(ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(0), reader.GetFieldValue<DateTime>(1).Ticks), async, cancellationToken);

    /// <summary>
    /// Runs one single-row statement on <paramref name="open"/> (the caller's, left open whatever happens) or on a connection
    /// of its own from <paramref name="server"/>, through <see cref="ServerCall"/> under the server's read watch: if the server
    /// goes silent for the read deadline the connection is broken and a <see cref="ServerDeadlineException"/> thrown (the
    /// caller's token is honoured the same way).
    /// </summary>
    private static ValueTask<T> RunAsync<T>(WatchedServer server, NpgsqlConnection? open, string sql, Func<NpgsqlDataReader, T> read, bool async, CancellationToken cancellationToken, params object[] arguments)
        => ServerCall.RunAsync<SingleRow<T>, T>(
            server, server.WatchRead(commandTimeoutSeconds: 0, cancellationToken), open, new SingleRow<T>(sql, read, arguments), async, cancellationToken, borrowed: open is not null);

    /// <summary>One statement whose first row is the answer, with its positional parameters ($1, $2, ...).</summary>
    private readonly struct SingleRow<T>(string sql, Func<NpgsqlDataReader, T> read, object[] arguments) : IServerStatement<T>
    {
        public NpgsqlCommand? CreateCommand(NpgsqlConnection connection)
        {
            var command = new NpgsqlCommand(sql, connection);
            foreach (var argument in arguments)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = argument });
            }

            return command;
        }

        public Task<T> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command) => ReadRowAsync(command!, read);

        public T Run(NpgsqlConnection connection, NpgsqlCommand? command) => ReadRow(command!, read);

        public CallHandover Succeeded(T result, OperationWatch watch, NpgsqlConnection connection) => CallHandover.None;

        public void Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection)
        {
        }
    }

    private static async Task<T> ReadRowAsync<T>(NpgsqlCommand command, Func<NpgsqlDataReader, T> read)
    {
        await using var owned = command;
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false);
        return read(reader);
    }

    private static T ReadRow<T>(NpgsqlCommand command, Func<NpgsqlDataReader, T> read)
    {
        using var owned = command;
        using var reader = command.ExecuteReader();
        reader.Read();
        return read(reader);
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
