namespace EfReplicaInterceptor.Demo;

/// <summary>Where a step must run (<c>primary</c> or <c>standby</c>) and the reasons the library may give for it.</summary>
internal sealed record Expectation(string Server, IReadOnlyList<string> Reasons)
{
    public static Expectation Primary(params string[] reasons) => new("primary", reasons);

    public static Expectation Standby() => new("standby", ["read"]);

    /// <summary>The routing target the library must report for <see cref="Server"/>.</summary>
    public string LibraryTarget => Server == "standby" ? "replica" : "primary";

    public override string ToString() => $"{Server} / {string.Join(" or ", Reasons)}";
}

/// <summary>
/// What one command reported about itself: the server that ran it, what it did, and what was wrong with its result
/// (null when nothing was).
/// </summary>
internal sealed record Seen(ServerSide Server, string Detail, string? Problem = null);

/// <summary>The outcome of one step, for the summary table.</summary>
internal sealed record StepResult(int Number, string Title, Expectation Expected, string RanOn, string Reason, bool Ok);
