using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace EfReplicaInterceptor.Benchmarks.Infrastructure;

/// <summary>Median time of a case divided by the median time of the baseline of its category (BenchmarkDotNet's <c>Ratio</c> uses means).</summary>
internal sealed class MedianRatioColumn : IColumn
{
    public string Id => nameof(MedianRatioColumn);

    public string ColumnName => "Median Ratio";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Baseline;

    public int PriorityInCategory => 1;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Median time divided by the median time of the baseline of the same category";

    public bool IsAvailable(Summary summary) => summary.HasBaselines();

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var baseline = summary.GetBaseline(summary.GetLogicalGroupKey(benchmarkCase));
        var current = summary[benchmarkCase]?.ResultStatistics;
        var reference = baseline is null ? null : summary[baseline]?.ResultStatistics;
        if (current is null || reference is null || reference.Median <= 0)
        {
            return "?";
        }

        return (current.Median / reference.Median).ToString("0.00", CultureInfo.InvariantCulture);
    }
}
