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
}

/// <summary>Stable names of <see cref="RoutingReason"/> and <see cref="RoutingTarget"/> values, as used in logs, metrics and traces.</summary>
public static class RoutingReasons
{
    private static readonly string[] ReasonNames =
    [
        "read",
        "transaction",
        "write-statement",
        "locking-read",
        "write-function",
        "session-statement",
        "unrecognized",
        "tagged-primary",
        "primary-scope",
        "after-write",
        "session-pinned",
        "no-replica",
        "replica-unavailable",
        "replica-lagging",
    ];

    /// <summary>The stable kebab-case name of <paramref name="reason"/> (for example <c>write-statement</c>).</summary>
    public static string GetName(RoutingReason reason)
    {
        var index = (int)reason;
        return (uint)index < (uint)ReasonNames.Length ? ReasonNames[index] : "unknown";
    }

    /// <summary>The stable name of <paramref name="target"/>: <c>primary</c> or <c>replica</c>.</summary>
    public static string GetName(RoutingTarget target) => target == RoutingTarget.Replica ? "replica" : "primary";
}
