namespace EfReplicaInterceptor;

/// <summary>
/// Why a command went where it went. Every routed command carries exactly one reason; it appears in
/// log events, on the <c>efreplica.commands</c> counter (tag <c>efreplica.reason</c>) and on the
/// current <see cref="System.Diagnostics.Activity"/>. <see cref="RoutingReasons.GetName(RoutingReason)"/> gives the
/// stable kebab-case name used there.
/// </summary>
public enum RoutingReason
{
    /// <summary><c>read</c>: a plain read outside any transaction, sent to a replica.</summary>
    Read = 0,

    /// <summary><c>transaction</c>: the command runs inside a transaction (EF, ADO.NET or an ambient <c>System.Transactions</c> scope).</summary>
    Transaction,

    /// <summary><c>write-statement</c>: the statement writes (INSERT, UPDATE, DELETE, MERGE, DDL, COPY FROM, ...).</summary>
    WriteStatement,

    /// <summary><c>locking-read</c>: a read with a row-locking clause (<c>FOR UPDATE</c>, <c>FOR SHARE</c>, ...).</summary>
    LockingRead,

    /// <summary><c>write-function</c>: the statement calls a function that needs the primary (<c>nextval</c>, advisory locks, a configured write function, ...).</summary>
    WriteFunction,

    /// <summary><c>session-statement</c>: the statement changes or depends on session state (SET, LISTEN, PREPARE, transaction control, ...).</summary>
    SessionStatement,

    /// <summary><c>unrecognized</c>: the classifier could not prove the statement a plain read.</summary>
    Unrecognized,

    /// <summary><c>tagged-primary</c>: the query was tagged with <c>.UsePrimary()</c>.</summary>
    TaggedPrimary,

    /// <summary><c>primary-scope</c>: the command runs inside <see cref="EfReplicaScope.ForcePrimary"/>.</summary>
    PrimaryScope,

    /// <summary><c>after-write</c>: the context (or consistency scope) has written and no replica is known to have that write yet.</summary>
    AfterWrite,

    /// <summary><c>session-pinned</c>: the application holds the connection open and an earlier command on it needed the primary.</summary>
    SessionPinned,

    /// <summary><c>no-replica</c>: no replica is configured.</summary>
    NoReplica,

    /// <summary><c>replica-unavailable</c>: replicas are configured but none is currently usable (down, or failed for this command).</summary>
    ReplicaUnavailable,

    /// <summary><c>replica-lagging</c>: every usable replica is behind the lag budget for this query.</summary>
    ReplicaLagging,

    /// <summary><c>schema</c>: EF's own migration or schema-management command (<c>Migrate</c>, <c>EnsureCreated</c>,
    /// <c>EnsureDeleted</c>, <c>CanConnect</c>, the history table and its checks), always on the primary: a replica's
    /// answer to "does this table exist?" or "which migrations ran?" may be stale.</summary>
    Schema,
}

/// <summary>Stable names of <see cref="RoutingReason"/> and <see cref="RoutingTarget"/> values, as used in logs, metrics and traces.</summary>
public static class RoutingReasons
{
    /// <summary>The stable kebab-case name of <paramref name="reason"/> (for example <c>write-statement</c>).</summary>
    public static string GetName(RoutingReason reason) => RoutingReasonTable.Find(reason)?.Name ?? "unknown";

    /// <summary>The stable name of <paramref name="target"/>: <c>primary</c> or <c>replica</c>.</summary>
    public static string GetName(RoutingTarget target) => target == RoutingTarget.Replica ? "replica" : "primary";
}

/// <summary>What a routing reason implies besides its target. One row per reason: adding a reason is this file only.</summary>
/// <param name="Reason">The reason.</param>
/// <param name="Name">Its stable kebab-case name (logs, metrics, traces).</param>
/// <param name="RunsAsRead">The library runs the command itself, as a read with retries, on a connection it opens (a plain read outside
/// any transaction whose session does not matter); otherwise EF runs it on its own (primary) connection.</param>
/// <param name="CountsAsFallback">A plain read that ran on the primary only because no replica could take it (the
/// <c>efreplica.read_fallbacks</c> counter).</param>
/// <param name="MarksWrite">The command writes (or may): the scopes it runs in must see it (read-your-writes).</param>
/// <param name="PinsSession">The command needs its session: while EF's connection stays open, later reads stay on it.</param>
internal sealed record RoutingReasonInfo(RoutingReason Reason, string Name, bool RunsAsRead, bool CountsAsFallback, bool MarksWrite, bool PinsSession);

/// <summary>The properties of every <see cref="RoutingReason"/>, indexed by its value.</summary>
internal static class RoutingReasonTable
{
    //                                                         name                  read   fallback  write  pins
    private static readonly RoutingReasonInfo[] Rows =
    [
        new(RoutingReason.Read,               "read",                true,  false,    false, false),
        new(RoutingReason.Transaction,        "transaction",         false, false,    false, true),
        new(RoutingReason.WriteStatement,     "write-statement",     false, false,    true,  true),
        new(RoutingReason.LockingRead,        "locking-read",        false, false,    false, true),
        new(RoutingReason.WriteFunction,      "write-function",      false, false,    true,  true),
        new(RoutingReason.SessionStatement,   "session-statement",   false, false,    false, true),
        new(RoutingReason.Unrecognized,       "unrecognized",        false, false,    true,  true),
        new(RoutingReason.TaggedPrimary,      "tagged-primary",      true,  false,    false, false),
        new(RoutingReason.PrimaryScope,       "primary-scope",       true,  false,    false, false),
        new(RoutingReason.AfterWrite,         "after-write",         true,  false,    false, false),
        new(RoutingReason.SessionPinned,      "session-pinned",      false, false,    false, false),
        new(RoutingReason.NoReplica,          "no-replica",          true,  true,     false, false),
        new(RoutingReason.ReplicaUnavailable, "replica-unavailable", true,  true,     false, false),
        new(RoutingReason.ReplicaLagging,     "replica-lagging",     true,  true,     false, false),
        new(RoutingReason.Schema,             "schema",              false, false,    false, false),
    ];

    /// <summary>Every row, in the order of the enum.</summary>
    public static IReadOnlyList<RoutingReasonInfo> All => Rows;

    /// <summary>The row of <paramref name="reason"/> (a table lookup, no allocation).</summary>
    public static RoutingReasonInfo Of(RoutingReason reason) => Rows[(int)reason];

    /// <summary>The row of <paramref name="reason"/>, or null for a value that is not a defined reason.</summary>
    public static RoutingReasonInfo? Find(RoutingReason reason) => (uint)reason < (uint)Rows.Length ? Rows[(int)reason] : null;
}
