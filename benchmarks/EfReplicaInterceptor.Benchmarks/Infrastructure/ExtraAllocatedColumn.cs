using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace EfReplicaInterceptor.Benchmarks.Infrastructure;

/// <summary>Bytes allocated per operation above the baseline of the same category: the library's cost in the terms.</summary>
internal sealed class ExtraAllocatedColumn : IColumn
{
    public string Id => nameof(ExtraAllocatedColumn);

    public string ColumnName => "Extra Alloc";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Metric;

    public int PriorityInCategory => 100;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Bytes allocated per operation minus those of the baseline of the same category (all threads)";

    public bool IsAvailable(Summary summary) => summary.HasBaselines();

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var baseline = summary.GetBaseline(summary.GetLogicalGroupKey(benchmarkCase));
        if (baseline is null || Allocated(summary, benchmarkCase) is not { } current || Allocated(summary, baseline) is not { } reference)
        {
            return "?";
        }

        return (current - reference).ToString("+#,0 B;-#,0 B;0 B", CultureInfo.InvariantCulture);
    }

    private static long? Allocated(Summary summary, BenchmarkCase benchmarkCase)
        => summary[benchmarkCase] is { } report ? report.GcStats.GetBytesAllocatedPerOperation(benchmarkCase) : null;
}
