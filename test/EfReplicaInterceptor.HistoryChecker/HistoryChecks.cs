namespace EfReplicaInterceptor.HistoryChecker;

/// <summary>The session guarantee a violation breaks.</summary>
public enum ViolationKind
{
    /// <summary>A read returned an older value of a register than a write of the same scope that had completed before the read began.</summary>
    ReadYourWrites,

    /// <summary>A read returned an older value of a register than a read of the same scope that had completed before it began.</summary>
    MonotonicReads,
}

/// <summary>
/// One broken guarantee: <see cref="Read"/> returned <see cref="ReadValue"/> for <see cref="Register"/>, below
/// <see cref="EarlierValue"/>, which <see cref="Earlier"/> (a write for read-your-writes, a read for monotonic reads) of the same
/// scope had written or seen and which had ended before <see cref="Read"/> started. <see cref="Earlier"/> is the operation with
/// the highest such value (the latest to end among equals).
/// </summary>
public sealed record Violation(ViolationKind Kind, string Scope, string Register, Operation Earlier, long EarlierValue, Operation Read, long ReadValue)
{
    /// <summary>How much earlier <see cref="Earlier"/> ended than <see cref="Read"/> began.</summary>
    public TimeSpan Gap => Read.Start - Earlier.End;

    /// <summary>One paragraph: the guarantee, the scope, both operations with their values and times.</summary>
    public override string ToString()
    {
        var what = Kind == ViolationKind.ReadYourWrites ? "read-your-writes" : "monotonic reads";
        var earlier = Kind == ViolationKind.ReadYourWrites ? "wrote" : "read";
        return $"{what}: scope {Scope}, register {Register}: {earlier} {EarlierValue} in {Earlier}, then {Gap.TotalMilliseconds:0.000} ms later read {ReadValue} in {Read}";
    }
}

/// <summary>What <see cref="HistoryChecks.Check"/> found.</summary>
/// <param name="Operations">Operations in the history (completed and failed).</param>
/// <param name="Reads">Completed reads checked.</param>
/// <param name="Writes">Completed writes, each an expectation for its scope's later reads.</param>
/// <param name="Failed">Operations that threw (ignored by the checks).</param>
/// <param name="Violations">Every violation, ordered by the read's start.</param>
public sealed record CheckResult(int Operations, int Reads, int Writes, int Failed, IReadOnlyList<Violation> Violations)
{
    /// <summary>Violations of read-your-writes.</summary>
    public int ReadYourWritesViolations => Violations.Count(v => v.Kind == ViolationKind.ReadYourWrites);

    /// <summary>Violations of monotonic reads.</summary>
    public int MonotonicReadsViolations => Violations.Count(v => v.Kind == ViolationKind.MonotonicReads);

    /// <summary>Reads that broke at least one guarantee (a read can break both, or break one for several registers).</summary>
    public int BadReads => Violations.Select(v => v.Read.Id).Distinct().Count();

    /// <summary>True when no guarantee was broken.</summary>
    public bool IsValid => Violations.Count == 0;

    /// <summary>The counts, then the first <paramref name="limit"/> violations of each kind, one a line.</summary>
    public string Describe(int limit = 10)
    {
        var lines = new List<string>
        {
            $"{Operations} operations ({Writes} writes, {Reads} reads, {Failed} failed): {ReadYourWritesViolations} read-your-writes and {MonotonicReadsViolations} monotonic-reads violations in {BadReads} reads",
        };
        foreach (var kind in Enum.GetValues<ViolationKind>())
        {
            var ofKind = Violations.Where(v => v.Kind == kind).ToList();
            lines.AddRange(ofKind.Take(limit).Select(v => "  " + v));
            if (ofKind.Count > limit)
            {
                lines.Add($"  … and {ofKind.Count - limit} more of this kind");
            }
        }

        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// Checks read-your-writes and monotonic reads, per scope and per register, over a whole history.
/// </summary>
/// <remarks>
/// <para>
/// Registers only grow, so each guarantee is a floor. For a completed read R of register K by scope S:
/// read-your-writes holds when R's value is at least every value S wrote to K in a completed write that ended before R
/// started; monotonic reads holds when R's value is at least every value of K returned by a completed read of S that ended
/// before R started.
/// </para>
/// <para>
/// "Ended before started" is the real-time order of the history's one clock. Operations that overlap in time are concurrent and
/// constrain nothing (a read that overlaps a write may or may not see it), which is why a floor comes only from operations that
/// had ended. Failed operations constrain nothing: a failed write may not have been applied; a failed read returned nothing.
/// Other scopes' writes constrain nothing: these are session guarantees, not linearizability.
/// </para>
/// <para>
/// Per (scope, register), floors are swept in end order against reads in start order: O(n log n) for the history.
/// </para>
/// </remarks>
public static class HistoryChecks
{
    /// <summary>Checks <paramref name="history"/>; see the remarks for the rules.</summary>
    public static CheckResult Check(IEnumerable<Operation> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var operations = history.ToList();
        if (operations.FirstOrDefault(o => o.End < o.Start) is { } backwards)
        {
            throw new ArgumentException($"Operation {backwards} ends before it starts.", nameof(history));
        }

        var violations = new List<Violation>();
        var completed = operations.Where(o => o.Outcome == OperationOutcome.Ok);
        var groups = completed
            .SelectMany(o => o.Values.Select(v => (Key: (o.Scope, Register: v.Key), Operation: o, v.Value)))
            .GroupBy(e => e.Key);
        foreach (var group in groups)
        {
            CheckRegister(group.Key.Scope, group.Key.Register, [.. group.Select(e => (e.Operation, e.Value))], violations);
        }

        violations.Sort((a, b) => a.Read.Start != b.Read.Start ? a.Read.Start.CompareTo(b.Read.Start) : a.Kind.CompareTo(b.Kind));
        return new CheckResult(
            operations.Count,
            operations.Count(o => o.Outcome == OperationOutcome.Ok && o.Kind == OperationKind.Read),
            operations.Count(o => o.Outcome == OperationOutcome.Ok && o.Kind == OperationKind.Write),
            operations.Count(o => o.Outcome == OperationOutcome.Failed),
            violations);
    }

    private static void CheckRegister(string scope, string register, List<(Operation Operation, long Value)> events, List<Violation> violations)
    {
        var floors = events.OrderBy(e => e.Operation.End).ToList();
        var reads = events.Where(e => e.Operation.Kind == OperationKind.Read).OrderBy(e => e.Operation.Start).ToList();
        (Operation Operation, long Value)? highestWrite = null;
        (Operation Operation, long Value)? highestRead = null;
        var next = 0;
        foreach (var read in reads)
        {
            for (; next < floors.Count && floors[next].Operation.End < read.Operation.Start; next++)
            {
                var floor = floors[next];
                if (floor.Operation.Kind == OperationKind.Write)
                {
                    highestWrite = Higher(highestWrite, floor);
                }
                else
                {
                    highestRead = Higher(highestRead, floor);
                }
            }

            if (highestWrite is { } write && read.Value < write.Value)
            {
                violations.Add(new Violation(ViolationKind.ReadYourWrites, scope, register, write.Operation, write.Value, read.Operation, read.Value));
            }

            if (highestRead is { } earlier && read.Value < earlier.Value)
            {
                violations.Add(new Violation(ViolationKind.MonotonicReads, scope, register, earlier.Operation, earlier.Value, read.Operation, read.Value));
            }
        }
    }

    private static (Operation Operation, long Value) Higher((Operation Operation, long Value)? current, (Operation Operation, long Value) candidate)
        => current is { } held && held.Value > candidate.Value ? held : candidate;
}
