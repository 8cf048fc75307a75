using System.Reflection;
using EfReplicaInterceptor;
using EfReplicaInterceptor.TestSupport.History;

/// <summary>
/// The cells that switch a guarantee off, where the checker must find violations (the integration tests' copy is compiled
/// against the library's internals; this one sets the internal switch by reflection, as this program has no access to it).
/// </summary>
internal static class GuaranteesOffCells
{
    /// <summary>The cells whose switch exists in this build of the library; a missing switch is said on standard error.</summary>
    public static IEnumerable<HistoryCell> All(WorkloadSettings workload)
        => Candidates(workload).Where(cell =>
        {
            var missing = cell.Variant!.Split('=')[0];
            if (typeof(EfReplicaOptions).GetProperty(missing, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic) is not null)
            {
                return true;
            }

            Console.Error.WriteLine($"skipped: {cell.Name} (EfReplicaOptions.{missing} does not exist in this build of the library)");
            return false;
        });

    private static IEnumerable<HistoryCell> Candidates(WorkloadSettings workload)
    {
        var sparse = workload with { LeaseSessions = 2, AmbientSessions = 1, Users = 1, CounterWriteInterval = TimeSpan.Zero, WriteShare = 0.5, ThinkTime = TimeSpan.FromMilliseconds(150) };
        yield return new HistoryCell(CommitMode.Synchronous, StandbyLayout.One, Disturbance.Steady)
        {
            FirstStandbyDelay = TimeSpan.FromMilliseconds(300),
            Variant = "ReadYourWrites=Off",
            Configure = options => options.ReadYourWrites = ReadYourWritesMode.Off,
            Workload = workload,
        };
        yield return new HistoryCell(CommitMode.Asynchronous, StandbyLayout.One, Disturbance.Steady)
        {
            Variant = "CaptureWritePositionForTests=true",
            Configure = options => Set(options, "CaptureWritePositionForTests", true),
            Workload = sparse,
        };
        yield return new HistoryCell(CommitMode.Synchronous, StandbyLayout.TwoLagged, Disturbance.Steady)
        {
            SecondStandbyDelay = TimeSpan.FromSeconds(1),
            Variant = "MonotonicReads=false",
            Configure = options => Set(options, "MonotonicReads", false),
            Workload = workload,
        };
        yield return new HistoryCell(CommitMode.SynchronousReplication, StandbyLayout.One, Disturbance.Steady)
        {
            Variant = "LongForkWait=false",
            Configure = options => Set(options, "LongForkWait", false),
            Workload = workload,
        };
        yield return new HistoryCell(CommitMode.SynchronousReplication, StandbyLayout.TwoLagged, Disturbance.StandbyRestarted)
        {
            Variant = "LongForkWait=false",
            Configure = options => Set(options, "LongForkWait", false),
            Workload = workload,
        };
    }

    private static void Set(EfReplicaOptions options, string name, object value)
    {
        var property = typeof(EfReplicaOptions).GetProperty(name, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
            ?? throw new InvalidOperationException($"EfReplicaOptions.{name} does not exist in this build of the library.");
        property.SetValue(options, value);
    }
}
