namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The primary's transactions that its new snapshots may not show yet: those of its current snapshot's xip list and every
/// xid from its xmax on (a transaction id as a 64-bit <c>xid8</c>, epoch included). With <see cref="Committed"/> (the server
/// tracks commit timestamps), exactly those of them that have a commit record already.
/// </summary>
internal readonly record struct PrimaryTransactions(long[] InProgress, long Xmax, long[]? Committed);

/// <summary>The statements of the Long Fork wait (<see cref="EfReplicaOptions.LongForkWait"/>); see <c>Consistency/LongForkWait</c>.</summary>
internal static partial class ServerQueries
{
    // The primary's current snapshot: its xip list and its xmax. A committing transaction whose commit record is flushed (and
    // shipped) but which has not left the process array yet is in the xip list only when a later transaction has completed;
    // otherwise it is at or above xmax (the latest completed xid + 1). With track_commit_timestamp, the commit timestamp is
    // set before the flush, so the xids of the snapshot and the running backends' xids at or above xmax that have one are
    // the committed transactions the snapshot does not show. backend_xid is a 32-bit xid: its epoch is xmax's, adjusted by
    // one when it wrapped around on either side (running xids are within 2^31 of xmax).
    private const string PrimaryTransactionsSql =
        "SELECT ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x), pg_snapshot_xmax(s)::text::bigint, "
        + "CASE WHEN current_setting('track_commit_timestamp')::bool THEN ARRAY("
        + "SELECT x::text::bigint FROM pg_snapshot_xip(s) x WHERE pg_xact_commit_timestamp((x::text::bigint % 4294967296)::text::xid) IS NOT NULL "
        + "UNION SELECT f FROM (SELECT a.backend_xid AS b, m - m % 4294967296 + a.backend_xid::text::bigint "
        + "+ CASE WHEN a.backend_xid::text::bigint > m % 4294967296 + 2147483648 THEN -4294967296 "
        + "WHEN a.backend_xid::text::bigint + 2147483648 < m % 4294967296 THEN 4294967296 ELSE 0 END AS f "
        + "FROM pg_stat_activity a, (SELECT pg_snapshot_xmax(s)::text::bigint AS m) xm WHERE a.backend_xid IS NOT NULL) r "
        + "WHERE r.f >= pg_snapshot_xmax(s)::text::bigint AND pg_xact_commit_timestamp(r.b) IS NOT NULL) END "
        + "FROM pg_current_snapshot() s";

    // On a standby: which of the primary's xip xids ($1), and of the xids from the primary's xmax ($2) up to the standby's own
    // xmax, the standby shows committed. pg_xact_status raises an error for an xid the standby has seen nothing of ("in the
    // future"), so it is asked only below the standby's snapshot xmax; a committed xid is always below it. At most 100,000
    // xids past the primary's xmax.
    private const string CommittedOnStandbySql =
        "SELECT ARRAY(SELECT c.x FROM (SELECT unnest($1::bigint[]) UNION SELECT generate_series($2::bigint, "
        + "least(pg_snapshot_xmax(pg_current_snapshot())::text::bigint, $2::bigint + 100000) - 1)) c(x) "
        + "WHERE CASE WHEN c.x < pg_snapshot_xmax(pg_current_snapshot())::text::bigint THEN pg_xact_status(c.x::text::xid8) = 'committed' ELSE false END)";

    // On the primary: how many of the xids ($1) its snapshot now does not show.
    private const string InvisibleOnPrimarySql =
        "SELECT count(*)::int FROM unnest($1::bigint[]) x WHERE NOT pg_visible_in_snapshot(x::text::xid8, pg_current_snapshot())";

    // On the primary: the xids of the running transactions (sessions and prepared transactions) at or above a snapshot's xmax
    // ($1), as 64-bit xids: a 32-bit xid takes $1's epoch, adjusted by one when it wrapped around on either side (as above).
    private const string RunningOnPrimarySql =
        "SELECT ARRAY(SELECT f FROM (SELECT $1::bigint - $1::bigint % 4294967296 + r.x::text::bigint "
        + "+ CASE WHEN r.x::text::bigint > $1::bigint % 4294967296 + 2147483648 THEN -4294967296 "
        + "WHEN r.x::text::bigint + 2147483648 < $1::bigint % 4294967296 THEN 4294967296 ELSE 0 END AS f "
        + "FROM (SELECT backend_xid AS x FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
        + "UNION ALL SELECT transaction FROM pg_prepared_xacts) r) a WHERE a.f >= $1::bigint)";

    /// <summary>The running transactions at or above <paramref name="xmax"/> on the primary (one round trip), within the read deadline.</summary>
    public static ValueTask<long[]> ReadRunningOnPrimaryAsync(Failover.WatchedServer primary, long xmax, bool async, CancellationToken cancellationToken)
        => RunAsync(primary, open: null, RunningOnPrimarySql, static reader => reader.GetFieldValue<long[]>(0), async, cancellationToken, xmax);

    /// <summary>The primary's transactions its new snapshots may not show yet (one round trip), within the read deadline.</summary>
    public static ValueTask<PrimaryTransactions> ReadPrimaryTransactionsAsync(Failover.WatchedServer primary, bool async, CancellationToken cancellationToken)
        => RunAsync(primary, open: null, PrimaryTransactionsSql, static reader =>
            new PrimaryTransactions(reader.GetFieldValue<long[]>(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetFieldValue<long[]>(2)), async, cancellationToken);

    /// <summary>Which of <paramref name="primary"/>'s transactions <paramref name="standby"/> shows committed (one round trip).</summary>
    public static ValueTask<long[]> ReadCommittedOnStandbyAsync(Failover.WatchedServer standby, PrimaryTransactions primary, bool async, CancellationToken cancellationToken)
        => RunAsync(standby, open: null, CommittedOnStandbySql, static reader => reader.GetFieldValue<long[]>(0), async, cancellationToken, primary.InProgress, primary.Xmax);

    /// <summary>How many of <paramref name="xids"/> the primary's new snapshots do not show yet (one round trip).</summary>
    public static ValueTask<int> CountInvisibleOnPrimaryAsync(Failover.WatchedServer primary, long[] xids, bool async, CancellationToken cancellationToken)
        => RunAsync(primary, open: null, InvisibleOnPrimarySql, static reader => reader.GetInt32(0), async, cancellationToken, xids);
}
