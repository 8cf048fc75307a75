namespace EfReplicaInterceptor.HistoryChecker;

/// <summary>What an operation did to the registers it names.</summary>
public enum OperationKind
{
    /// <summary>Set each named register to its value (a version, or a counter's new value).</summary>
    Write,

    /// <summary>Read each named register; its value is what the read returned (0 for a register that did not exist yet).</summary>
    Read,
}

/// <summary>Whether the operation completed.</summary>
public enum OperationOutcome
{
    /// <summary>It returned normally: a write was committed, a read returned the values recorded.</summary>
    Ok,

    /// <summary>
    /// It threw. A failed write may or may not have been applied, so it sets no expectation; a failed read returned nothing.
    /// Both are kept in the history for the record and ignored by the checks.
    /// </summary>
    Failed,
}

/// <summary>
/// One operation of a history, as a Jepsen history records it. Registers hold values that only ever grow (a per-scope key
/// written with increasing versions, a shared counter that writers increment), so "older" is "smaller".
/// </summary>
/// <param name="Id">Unique in the history, in the order operations were recorded.</param>
/// <param name="Scope">The session the guarantees are promised to: a context lease, an ambient scope, a user.</param>
/// <param name="Kind">Write or read.</param>
/// <param name="Values">Register name to value written, or to value read.</param>
/// <param name="Start">When the operation was invoked, on one monotonic clock for the whole history.</param>
/// <param name="End">When it returned (or threw), on the same clock; not before <paramref name="Start"/>.</param>
/// <param name="Outcome">Whether it completed.</param>
/// <param name="Server">Which server ran it when the workload could tell cheaply (for example a port); null otherwise.</param>
public sealed record Operation(
    long Id,
    string Scope,
    OperationKind Kind,
    IReadOnlyDictionary<string, long> Values,
    TimeSpan Start,
    TimeSpan End,
    OperationOutcome Outcome = OperationOutcome.Ok,
    string? Server = null)
{
    /// <summary>One line: id, scope, kind, values, interval, server.</summary>
    public override string ToString()
    {
        var values = string.Join(", ", Values.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => $"{v.Key}={v.Value}"));
        var server = Server is null ? string.Empty : $" on {Server}";
        var outcome = Outcome == OperationOutcome.Ok ? string.Empty : " FAILED";
        return $"#{Id} {Scope} {Kind.ToString().ToLowerInvariant()} [{values}] {Start.TotalMilliseconds:0.000}–{End.TotalMilliseconds:0.000} ms{server}{outcome}";
    }
}
