using System.Globalization;
using System.Text;

namespace EfReplicaInterceptor.LoadRun;

/// <summary>The markdown table, the CSV and the SVG chart of a run.</summary>
internal static class Report
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Markdown(IReadOnlyList<VariantResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine("| variant | ops/s | p50 ms | p99 ms | read p50 ms | write p50 ms | read-back p50 ms | reads on standby | read-after-own-write misses | errors |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            if (r.Status.StartsWith("skipped", StringComparison.Ordinal))
            {
                text.AppendLine(Invariant, $"| {r.Title} | {r.Status} | | | | | | | | |");
                continue;
            }

            text.AppendLine(Invariant,
                $"| {r.Title} | {r.OperationsPerSecond:0} | {r.P50Ms:0.00} | {r.P99Ms:0.00} | {r.ReadP50Ms:0.00} | {r.WriteP50Ms:0.00} | {r.ReadBackP50Ms:0.00} | "
                + $"{r.StandbyShare:P1} ({r.StandbyReads:N0} of {r.Reads:N0}) | {r.ReadBackMisses:N0} of {r.ReadBacks:N0} | {r.Errors:N0} |");
        }

        return text.ToString();
    }

    public static string Csv(IReadOnlyList<VariantResult> results, WorkloadSettings settings)
    {
        var text = new StringBuilder();
        text.AppendLine("variant,status,workers,seconds,operations,ops_per_s,p50_ms,p99_ms,read_p50_ms,write_p50_ms,read_back_p50_ms,reads,standby_reads,standby_share,writes,read_backs,read_back_misses,read_backs_on_primary,errors,first_error");
        foreach (var r in results)
        {
            text.AppendLine(Invariant,
                $"{r.Key},{Quote(r.Status)},{settings.Workers},{r.Seconds:0.000},{r.Operations},{r.OperationsPerSecond:0.0},{r.P50Ms:0.000},{r.P99Ms:0.000},"
                + $"{r.ReadP50Ms:0.000},{r.WriteP50Ms:0.000},{r.ReadBackP50Ms:0.000},{r.Reads},{r.StandbyReads},{r.StandbyShare:0.0000},{r.Writes},{r.ReadBacks},{r.ReadBackMisses},{r.ReadBacksOnPrimary},{r.Errors},{Quote(r.FirstError ?? string.Empty)}");
        }

        return text.ToString();
    }

    /// <summary>Two bar charts side by side: throughput and read-after-own-write misses per variant.</summary>
    public static string Svg(IReadOnlyList<VariantResult> results, string caption)
    {
        const int panelWidth = 380, height = 300, top = 40, bottom = 70, barGap = 14;
        var plotHeight = height - top - bottom;
        var text = new StringBuilder();
        var captionLines = caption.Split("; ");
        text.AppendLine(Invariant, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{panelWidth * 2 + 20}\" height=\"{height + (14 * captionLines.Length)}\" font-family=\"sans-serif\" font-size=\"11\">");
        text.AppendLine("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        Panel(0, "Throughput (operations/s)", r => r.OperationsPerSecond, "#4472c4", r => r.OperationsPerSecond.ToString("0", Invariant));
        Panel(panelWidth + 20, "Read-after-own-write misses", r => r.ReadBackMisses, "#c0504d",
            r => r.ReadBacks == 0 ? "0" : string.Create(Invariant, $"{r.ReadBackMisses} ({(double)r.ReadBackMisses / r.ReadBacks:P0})"));
        for (var line = 0; line < captionLines.Length; line++)
        {
            text.AppendLine(Invariant, $"<text x=\"10\" y=\"{height - 20 + (14 * line)}\" fill=\"#555\">{Escape(captionLines[line])}</text>");
        }

        text.AppendLine("</svg>");
        return text.ToString();

        void Panel(int x0, string title, Func<VariantResult, double> value, string colour, Func<VariantResult, string> label)
        {
            text.AppendLine(Invariant, $"<text x=\"{x0 + panelWidth / 2}\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{Escape(title)}</text>");
            var max = Math.Max(1, results.Max(r => value(r)));
            var barWidth = (panelWidth - 20 - (barGap * (results.Count + 1))) / Math.Max(1, results.Count);
            text.AppendLine(Invariant, $"<line x1=\"{x0 + 10}\" y1=\"{top + plotHeight}\" x2=\"{x0 + panelWidth - 10}\" y2=\"{top + plotHeight}\" stroke=\"#333\"/>");
            for (var i = 0; i < results.Count; i++)
            {
                var r = results[i];
                var x = x0 + 10 + barGap + (i * (barWidth + barGap));
                var skipped = r.Status.StartsWith("skipped", StringComparison.Ordinal);
                var v = skipped ? 0 : value(r);
                var h = v / max * plotHeight;
                text.AppendLine(Invariant, $"<rect x=\"{x}\" y=\"{top + plotHeight - h:0.0}\" width=\"{barWidth}\" height=\"{h:0.0}\" fill=\"{colour}\"/>");
                text.AppendLine(Invariant, $"<text x=\"{x + barWidth / 2}\" y=\"{top + plotHeight - h - 4:0.0}\" text-anchor=\"middle\">{(skipped ? "skipped" : Escape(label(r)))}</text>");
                text.AppendLine(Invariant, $"<text x=\"{x + barWidth / 2}\" y=\"{top + plotHeight + 16}\" text-anchor=\"middle\">{Escape(r.Key)}</text>");
            }
        }
    }

    private static string Quote(string value) =>
        value.Contains(',', StringComparison.Ordinal) || value.Contains('"', StringComparison.Ordinal) || value.Contains('\n', StringComparison.Ordinal)
            ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal) + "\""
            : value;

    private static string Escape(string value) =>
        value.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
