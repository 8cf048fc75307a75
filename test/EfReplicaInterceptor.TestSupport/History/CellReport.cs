using System.Globalization;
using System.Text;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.HistoryChecker;

namespace EfReplicaInterceptor.TestSupport.History;

/// <summary>What one cell's run produced: the checker's verdict and the cost figures.</summary>
/// <param name="Cell">The cell.</param>
/// <param name="Check">The checker's result over the whole history.</param>
/// <param name="ReadsByServer">Completed reads by the server that ran them.</param>
/// <param name="PositionCaptures">Primary round trips spent capturing WAL positions.</param>
/// <param name="ReplayChecks">Replica round trips spent checking replayed positions.</param>
/// <param name="ReadFallbacks">Reads that ran on the primary because no replica could take them.</param>
/// <param name="Counters">Every library counter of the run.</param>
/// <param name="Errors">Operations that threw, by kind and message.</param>
/// <param name="Elapsed">The workload's wall time.</param>
public sealed record CellReport(
    HistoryCell Cell,
    CheckResult Check,
    IReadOnlyDictionary<string, int> ReadsByServer,
    long PositionCaptures,
    long ReplayChecks,
    long ReadFallbacks,
    IReadOnlyDictionary<string, long> Counters,
    IReadOnlyDictionary<string, int> Errors,
    TimeSpan Elapsed)
{
    /// <summary>What the Long Fork wait did in the cell (<see cref="EfReplicaOptions.LongForkWait"/>).</summary>
    public LongForkFigures LongFork { get; init; } = new(0, 0, 0, TimeSpan.Zero, TimeSpan.Zero);

    /// <summary>Share of completed reads a standby ran.</summary>
    public double ReplicaShare => Check.Reads == 0 ? 0 : (double)ReadsByServer.Where(s => s.Key != "primary").Sum(s => s.Value) / Check.Reads;

    /// <summary>
    /// Monotonic-reads violations where the earlier read ran on a standby and the later one on the primary: PostgreSQL makes a
    /// commit visible on the primary only after its WAL is flushed, and the walsender ships WAL at the flush, so a standby can
    /// show a commit that new snapshots on the primary do not include yet (measured with plain Npgsql:
    /// <c>bash build/history.sh --visibility-probe 20</c>). Counted apart, not excused: they are violations of the library's promise.
    /// </summary>
    public int PrimaryBehindStandby => Check.Violations.Count(v =>
        v.Kind == ViolationKind.MonotonicReads && v.Read.Server == "primary" && v.Earlier.Server is { } earlier && earlier != "primary");

    /// <summary>Violations other than <see cref="PrimaryBehindStandby"/>.</summary>
    public int OtherViolations => Check.Violations.Count - PrimaryBehindStandby;

    /// <summary>Standbys' replay positions read from the primary with a capture and credited to a replica (spare replay checks).</summary>
    public long StandbyReplayReports => Counters.GetValueOrDefault(EfReplicaDiagnostics.StandbyReplayReportsCounterName);

    /// <summary>Primary round trips beyond the workload's own statements, per completed write (a unit of work that wrote).</summary>
    public double ExtraPrimaryRoundTripsPerWrite => Check.Writes == 0 ? 0 : (double)PositionCaptures / Check.Writes;

    /// <summary>The header of <see cref="Row"/>, in Markdown.</summary>
    public static string Header =>
        "| cell | operations | read-your-writes violations | monotonic-reads violations (of which primary behind a standby) | failed ops | reads on standbys | by server | extra primary round trips per write | replica checks per write | reads on the primary for lack of a replica | Long Fork checks (round trips each; waits, waited s in all, longest ms) | seconds |"
        + Environment.NewLine
        + "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|";

    /// <summary>One Markdown table row.</summary>
    public string Row()
    {
        var servers = string.Join(", ", ReadsByServer.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key} {s.Value}"));
        var perWrite = Check.Writes == 0 ? 0 : (double)ReplayChecks / Check.Writes;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"| {Cell.Name} | {Check.Operations:N0} | {Check.ReadYourWritesViolations:N0} | {Check.MonotonicReadsViolations:N0} ({PrimaryBehindStandby:N0}) | {Check.Failed:N0} | {ReplicaShare:P1} | {servers} | {ExtraPrimaryRoundTripsPerWrite:0.00} | {perWrite:0.00} | {ReadFallbacks:N0} | {LongFork} | {Elapsed.TotalSeconds:0.0} |");
    }

    /// <summary>The row, the first violations and the errors, for a test's output or the long run's log.</summary>
    public string Describe(int violations = 5)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{Cell.Name}: {Check.Describe(violations)}");
        if (PrimaryBehindStandby > 0)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  of the monotonic-reads violations, {PrimaryBehindStandby} read on the primary less than a standby had shown (commit visibility order)");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"  reads on standbys {ReplicaShare:P1}; position captures {PositionCaptures} ({ExtraPrimaryRoundTripsPerWrite:0.00} per write), replica checks {ReplayChecks}, standby rows credited {StandbyReplayReports}, reads on the primary for lack of a replica {ReadFallbacks}; {Elapsed.TotalSeconds:0.0} s");
        text.AppendLine(CultureInfo.InvariantCulture, $"  Long Fork checks: {LongFork}");
        foreach (var (error, count) in Errors.OrderByDescending(e => e.Value).Take(5))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  error ×{count}: {error}");
        }

        return text.ToString().TrimEnd();
    }
}

/// <summary>The Long Fork wait's figures in one cell: checks (moves of a scope from a standby to the primary), their round trips, the checks that waited and how long.</summary>
/// <param name="Checks">Checks made.</param>
/// <param name="RoundTrips">Round trips they spent (primary and standby, polls included).</param>
/// <param name="Waits">Checks that found transactions the primary did not show yet.</param>
/// <param name="Waited">How long those waited in all.</param>
/// <param name="Longest">The longest wait.</param>
public sealed record LongForkFigures(long Checks, long RoundTrips, long Waits, TimeSpan Waited, TimeSpan Longest)
{
    /// <inheritdoc/>
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Checks:N0} ({(Checks == 0 ? 0 : (double)RoundTrips / Checks):0.00}; {Waits:N0}, {Waited.TotalSeconds:0.00} s, {Longest.TotalMilliseconds:0} ms)");
}
