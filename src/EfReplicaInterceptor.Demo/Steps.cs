using EfReplicaInterceptor.Samples.Shop;

namespace EfReplicaInterceptor.Demo;

/// <summary>
/// Where a step must run (<c>primary</c>, <c>standby</c> or <c>promoted standby</c>) and the reasons the library may give for
/// it; <see cref="Or"/> is an equally good alternative (a read after a write may go to a standby that has replayed it).
/// </summary>
internal sealed record Expectation(string Server, IReadOnlyList<string> Reasons, Expectation? Or = null)
{
    public static Expectation Primary(params string[] reasons) => new("primary", reasons);

    public static Expectation Standby() => new("standby", ["read"]);

    /// <summary>The old standby after <c>pg_ctl promote</c>: the primary now, so the library targets the primary.</summary>
    public static Expectation PromotedStandby(params string[] reasons) => new("promoted standby", reasons);

    /// <summary>The routing target the library must report for <see cref="Server"/>.</summary>
    public string LibraryTarget => Server == "standby" ? "replica" : "primary";

    /// <summary>True when the server that ran the command and the library's decision agree with this expectation or <see cref="Or"/>.</summary>
    public bool Matches(string ranOn, RoutedCommand routed)
        => (ranOn == Server && routed.Target == LibraryTarget && Reasons.Contains(routed.Reason))
            || (Or?.Matches(ranOn, routed) ?? false);

    public override string ToString()
        => $"{Server} / {string.Join(" or ", Reasons)}{(Or is null ? "" : $", or {Or}")}";
}

/// <summary>
/// What one command reported about itself: the server that ran it, what it did, and what was wrong with its result
/// (null when nothing was).
/// </summary>
internal sealed record Seen(ServerSide Server, string Detail, string? Problem = null);

/// <summary>The outcome of one step, for the summary table.</summary>
internal sealed record StepResult(int Number, string Title, string Expected, string RanOn, string Reason, bool Ok);

/// <summary>Shape of the raw SQL queries (<c>SqlQueryRaw</c>) that report where they ran.</summary>
internal sealed class RawServerSide
{
    public long Value { get; set; }

    public int Port { get; set; }

    public bool InRecovery { get; set; }
}
