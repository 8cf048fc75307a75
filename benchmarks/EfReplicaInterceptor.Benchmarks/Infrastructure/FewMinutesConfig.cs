using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Order;

namespace EfReplicaInterceptor.Benchmarks.Infrastructure;

/// <summary>
/// The job every benchmark here runs with, sized so that all of them finish in a few minutes: one launch, a fixed number
/// of operations per iteration (<see cref="OperationsPerIteration"/> unless a class says otherwise with
/// <c>[InvocationCount]</c>), 2 warm-up and 5 measured iterations, and one more iteration in which MemoryDiagnoser counts
/// the bytes allocated.
/// </summary>
/// <remarks>
/// <para>
/// Why fixed counts: a database round trip here takes 1–5 ms, and the first call of a query (EF compiles it) can take longer
/// than an iteration, which makes BenchmarkDotNet's pilot run one operation per iteration; its allocation figure then comes
/// from a single operation. With fixed counts the allocation figure is the average over one whole iteration of the
/// operation count.
/// </para>
/// <para>
/// Why <c>DOTNET_TC_CallCountingDelayMs=0</c>: the runtime normally delays re-compiling hot methods with full optimisation
/// until no new method has been compiled for 100 ms, which EF and Npgsql keep postponing for seconds; until then each
/// operation allocates about 1 KB more (measured: 42.5 KB settling to 41.1 KB over 8 s for the single-row query). Without the
/// delay the code settles within the warm-up, so the allocation figures are the steady state a long-running application
/// has. The steady-state code is the same either way.
/// </para>
/// <para>
/// Columns: the median and, beside BenchmarkDotNet's mean-based <c>Ratio</c>, <see cref="MedianRatioColumn"/> (the issue's
/// target is on medians) and <see cref="ExtraAllocatedColumn"/> (bytes per operation above the baseline of the category).
/// </para>
/// </remarks>
internal sealed class FewMinutesConfig : ManualConfig
{
    /// <summary>Operations per iteration unless a class sets its own.</summary>
    public const int OperationsPerIteration = 192;

    public FewMinutesConfig()
    {
        AddJob(Job.Default
            .WithId("FewMinutes")
            .WithLaunchCount(1)
            .WithWarmupCount(2)
            .WithIterationCount(5)
            .WithInvocationCount(OperationsPerIteration)
            .WithUnrollFactor(1)
            .WithEnvironmentVariable("DOTNET_TC_CallCountingDelayMs", "0"));
        AddColumn(StatisticColumn.Median, new MedianRatioColumn(), new ExtraAllocatedColumn());
        HideColumns(
            Column.Error, Column.RatioSD, Column.Job, Column.LaunchCount, Column.WarmupCount, Column.IterationCount,
            Column.InvocationCount, Column.UnrollFactor, Column.EnvironmentVariables);
        WithOrderer(new DefaultOrderer(SummaryOrderPolicy.Declared));
    }
}
