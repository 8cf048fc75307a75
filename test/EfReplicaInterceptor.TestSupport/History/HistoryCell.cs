namespace EfReplicaInterceptor.TestSupport.History;

/// <summary>How the primary commits the workload's writes.</summary>
public enum CommitMode
{
    /// <summary><c>synchronous_commit = on</c> server-wide.</summary>
    Synchronous,

    /// <summary><c>synchronous_commit = off</c> server-wide (reloaded on the primary).</summary>
    Asynchronous,

    /// <summary><c>synchronous_commit = on</c> server-wide, <c>SET LOCAL synchronous_commit = off</c> in every writing transaction.</summary>
    SetLocalOff,

    /// <summary>
    /// Synchronous replication: <c>synchronous_standby_names</c> names the first standby (the one every cell reads from and
    /// disturbs) and <c>synchronous_commit = remote_apply</c>, so a commit returns once that standby applied it; the second
    /// standby is asynchronous. While the first standby is stopped or its replay paused, the primary's commits wait for it.
    /// </summary>
    SynchronousReplication,
}

/// <summary>Which standbys the cluster under test reads from.</summary>
public enum StandbyLayout
{
    /// <summary>The first standby only, applying WAL as it comes.</summary>
    One,

    /// <summary>Both standbys: the first applying WAL as it comes, the second <see cref="HistoryCell.SecondStandbyDelay"/> late.</summary>
    TwoLagged,
}

/// <summary>What happens to the first standby while the workload runs.</summary>
public enum Disturbance
{
    /// <summary>Nothing.</summary>
    Steady,

    /// <summary>Replay paused (<c>pg_wal_replay_pause()</c>) for <see cref="HistoryCell.DisturbanceLength"/> and resumed, after half a length and then every four lengths.</summary>
    ReplayPaused,

    /// <summary>Stopped (fast) and started again, after half a <see cref="HistoryCell.DisturbanceLength"/> and then every three lengths and the restart's own time.</summary>
    StandbyRestarted,
}

/// <summary>One cell of the history matrix: server settings, replicas, a disturbance, the library's options and the workload.</summary>
public sealed record HistoryCell(CommitMode Commit, StandbyLayout Standbys, Disturbance Disturbance)
{
    /// <summary>The second standby's <c>recovery_min_apply_delay</c> (two-standby cells). Default 300 ms.</summary>
    public TimeSpan SecondStandbyDelay { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>The first standby's <c>recovery_min_apply_delay</c>. Default zero.</summary>
    public TimeSpan FirstStandbyDelay { get; init; } = TimeSpan.Zero;

    /// <summary>How long a pause lasts; the first disturbance comes after half of it, the next ones three lengths after the last ended. Default 1.5 s.</summary>
    public TimeSpan DisturbanceLength { get; init; } = TimeSpan.FromSeconds(1.5);

    /// <summary>The library's options beyond the servers (guarantees switched off, intervals); applied after the cell's replicas are chosen.</summary>
    public Action<EfReplicaOptions>? Configure { get; init; }

    /// <summary>A label for a cell that changes the library's options, e.g. <c>ReadYourWrites=Off</c>.</summary>
    public string? Variant { get; init; }

    /// <summary>The workload's shape (its <see cref="WorkloadSettings.Commit"/> follows <see cref="Commit"/>).</summary>
    public WorkloadSettings Workload { get; init; } = new();

    /// <summary>For example <c>async/2 standbys (0, 300 ms)/replay paused</c>.</summary>
    public string Name
    {
        get
        {
            var commit = Commit switch
            {
                CommitMode.Synchronous => "sync",
                CommitMode.Asynchronous => "async",
                CommitMode.SynchronousReplication => "sync-rep",
                _ => "set-local-off",
            };
            var standbys = Standbys == StandbyLayout.One
                ? $"1 standby{Delay(FirstStandbyDelay)}"
                : $"2 standbys ({FirstStandbyDelay.TotalMilliseconds:0}, {SecondStandbyDelay.TotalMilliseconds:0} ms)";
            var disturbance = Disturbance switch
            {
                Disturbance.Steady => "steady",
                Disturbance.ReplayPaused => "replay paused",
                _ => "standby restarted",
            };
            return $"{commit}/{standbys}/{disturbance}" + (Variant is null ? string.Empty : $" [{Variant}]");

            static string Delay(TimeSpan delay) => delay > TimeSpan.Zero ? $" ({delay.TotalMilliseconds:0} ms)" : string.Empty;
        }
    }

    /// <summary>Every combination of commit mode, standbys and disturbance: 24 cells with the guarantees on.</summary>
    public static IReadOnlyList<HistoryCell> Matrix(WorkloadSettings workload)
        => [.. from commit in Enum.GetValues<CommitMode>()
               from standbys in Enum.GetValues<StandbyLayout>()
               from disturbance in Enum.GetValues<Disturbance>()
               select new HistoryCell(commit, standbys, disturbance) { Workload = workload }];

    /// <inheritdoc/>
    public override string ToString() => Name;
}
