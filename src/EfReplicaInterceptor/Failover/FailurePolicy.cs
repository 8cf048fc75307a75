namespace EfReplicaInterceptor.Failover;

/// <summary>Where a read goes after it failed on a replica.</summary>
internal enum ReadFailureNext : byte
{
    /// <summary>Another replica in rotation not yet tried (for an unconstrained read), else the primary.</summary>
    AnotherServer,

    /// <summary>The primary, and the statement is treated as a write from then on (a standby refused it as one).</summary>
    PrimaryAsWrite,
}

/// <summary>
/// What the library does about one kind of failover error, for reads and writes alike. One row per
/// <see cref="ServerErrorKind"/>: adding an error kind is <see cref="FailoverErrors"/> (how it is recognised) and this table
/// (what it does). docs/failover-and-errors.md's table says the same.
/// </summary>
/// <param name="Kind">The error kind.</param>
/// <param name="ReplicaLeavesRotation">A read that failed this way on a replica takes the replica out of rotation (its
/// breaker opens; the monitor or a single half-open probe lets it back).</param>
/// <param name="ClearsReplicaPool">The replica's idle pooled connections are dropped (they are likely dead too).</param>
/// <param name="ClearsPrimaryPool">On the primary (a read or a write), its idle pooled connections are dropped.</param>
/// <param name="ReadNext">Where a read that failed this way on a replica goes next.</param>
/// <param name="WriteOutcome">What is known of a write that failed this way on the primary outside an open transaction
/// (inside one that was not being committed, a lost connection means the server rolled it back: not applied).</param>
/// <param name="WriteMessage">What happened to such a write, for the exception's message.</param>
internal sealed record FailureRule(
    ServerErrorKind Kind,
    bool ReplicaLeavesRotation,
    bool ClearsReplicaPool,
    bool ClearsPrimaryPool,
    ReadFailureNext ReadNext,
    FailoverOutcome WriteOutcome,
    string WriteMessage);

/// <summary>The failure policy table, indexed by <see cref="ServerErrorKind"/>.</summary>
internal static class FailurePolicy
{
    private static readonly FailureRule?[] Rows =
    [
        null, // ServerErrorKind.None: not a failover error; the caller's own error, left alone
        new(ServerErrorKind.Unreachable, ReplicaLeavesRotation: true, ClearsReplicaPool: true, ClearsPrimaryPool: true,
            ReadFailureNext.AnotherServer, FailoverOutcome.NotApplied, "the primary could not be reached, so nothing was sent"),
        new(ServerErrorKind.ConnectionLost, ReplicaLeavesRotation: true, ClearsReplicaPool: true, ClearsPrimaryPool: true,
            ReadFailureNext.AnotherServer, FailoverOutcome.Unknown, "the connection was lost after the command was sent: it may or may not have been applied"),
        new(ServerErrorKind.ReadOnly, ReplicaLeavesRotation: false, ClearsReplicaPool: false, ClearsPrimaryPool: true,
            ReadFailureNext.PrimaryAsWrite, FailoverOutcome.NotApplied, "the server rejected it as read-only: the primary was demoted or the topology changed"),
        new(ServerErrorKind.RecoveryConflict, ReplicaLeavesRotation: false, ClearsReplicaPool: false, ClearsPrimaryPool: false,
            ReadFailureNext.AnotherServer, FailoverOutcome.NotApplied, "a recovery conflict cancelled it"),
        // The server ended an idle session (idle_session_timeout): says nothing about the server's health, but its other idle
        // pooled connections are likely expired too.
        new(ServerErrorKind.SessionExpired, ReplicaLeavesRotation: false, ClearsReplicaPool: true, ClearsPrimaryPool: true,
            ReadFailureNext.AnotherServer, FailoverOutcome.NotApplied, "the server had closed the idle session before the command reached it, so nothing ran"),
        // A hung server (it answered neither the command nor anything else within the deadline): its connection was broken
        // by the library. Its idle pooled connections lead to the same silence.
        new(ServerErrorKind.Unresponsive, ReplicaLeavesRotation: true, ClearsReplicaPool: true, ClearsPrimaryPool: true,
            ReadFailureNext.AnotherServer, FailoverOutcome.Unknown, "the server did not answer within the deadline after the command was sent, so its connection was closed: it may or may not have been applied"),
    ];

    /// <summary>Every row (the kinds that are failover errors).</summary>
    public static IEnumerable<FailureRule> All => Rows.OfType<FailureRule>();

    /// <summary>The row of a failover error kind.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kind"/> is <see cref="ServerErrorKind.None"/> or unknown.</exception>
    public static FailureRule For(ServerErrorKind kind)
        => (uint)kind < (uint)Rows.Length && Rows[(int)kind] is { } rule ? rule : throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a failover error.");

    /// <summary>
    /// The outcome of a write that failed with <paramref name="kind"/>, and why: nothing was sent when the connection could
    /// not be opened; a lost connection inside a transaction that was not being committed was rolled back; a COMMIT whose
    /// connection was lost has an unknown outcome.
    /// </summary>
    public static (FailoverOutcome Outcome, string Message) WriteOutcome(ServerErrorKind kind, FailurePhase phase, bool inOpenTransaction, bool isCommit)
    {
        var rule = For(phase == FailurePhase.Opening ? ServerErrorKind.Unreachable : kind);
        if (rule.WriteOutcome == FailoverOutcome.NotApplied)
        {
            return (FailoverOutcome.NotApplied, rule.WriteMessage);
        }

        if (inOpenTransaction && !isCommit)
        {
            return (FailoverOutcome.NotApplied, "the connection was lost inside a transaction that was not committed, which the server rolls back");
        }

        return isCommit
            ? (FailoverOutcome.Unknown, "the connection was lost after COMMIT was sent: the transaction may or may not have been committed")
            : (rule.WriteOutcome, rule.WriteMessage);
    }
}
