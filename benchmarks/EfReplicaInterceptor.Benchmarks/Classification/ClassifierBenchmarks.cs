using BenchmarkDotNet.Attributes;

namespace EfReplicaInterceptor.Benchmarks.Classification;

/// <summary>
/// What classifying a command costs. The texts (<see cref="ClassifierTexts"/>) are SQL as EF Core 10 and Npgsql generate it: an
/// Include with a filter, an ordering and a limit (about 600 characters), a two-level Include (about 1,000 characters), and an
/// audit-log join filtered on enum constants stored as text (about 600 characters), which the screen declines.
/// <list type="bullet">
/// <item><c>Classify</c> reads the whole text every time, as for a query EF has not run before: the vectorised screen, and the
/// full analysis only when the screen declines.</item>
/// <item><c>full analysis</c> is the tokenising analysis alone (what every text cost before the screen, and what a declined text
/// costs after it).</item>
/// <item><c>ClassifyCached</c> is the router's path for a text EF reuses, found by reference in the cache.</item>
/// </list>
/// Targets: at most 1 µs and 0 bytes for the first, 50 ns and 0 bytes for the cached hit.
/// </summary>
[MemoryDiagnoser]
public class ClassifierBenchmarks
{
    private readonly SqlClassifier _classifier = new(["audit.log_access", "touch_order"]);

    [GlobalSetup]
    public void Setup()
    {
        // The texts must be what they claim: reads of the intended sizes, taking (or not taking) the screen's fast path.
        foreach (var (text, min, max, screened) in new[]
        {
            (ClassifierTexts.IncludeWhereOrderLimit, 550, 650, true),
            (ClassifierTexts.IncludeThenInclude, 950, 1_050, true),
            (ClassifierTexts.AuditEntriesByKind, 550, 650, false),
        })
        {
            if (text.Length < min || text.Length > max || !_classifier.Classify(text).IsReplicaSafe || _classifier.ScreenAccepts(text) != screened)
            {
                throw new InvalidOperationException($"Benchmark text of {text.Length} characters is not a read of {min}-{max} characters that the screen {(screened ? "accepts" : "declines")}.");
            }
        }

        _classifier.ClassifyCached(ClassifierTexts.IncludeWhereOrderLimit);
        _classifier.ClassifyCached(ClassifierTexts.IncludeThenInclude);
    }

    [Benchmark(Baseline = true, Description = "Classify, 600-char Include")]
    public SqlClassification Classify600() => _classifier.Classify(ClassifierTexts.IncludeWhereOrderLimit);

    [Benchmark(Description = "Classify, 1,000-char ThenInclude")]
    public SqlClassification Classify1000() => _classifier.Classify(ClassifierTexts.IncludeThenInclude);

    [Benchmark(Description = "Classify, 600-char audit (declined)")]
    public SqlClassification ClassifyDeclined() => _classifier.Classify(ClassifierTexts.AuditEntriesByKind);

    [Benchmark(Description = "full analysis, 600-char")]
    public SqlClassification Full600() => _classifier.ClassifyWithoutScreen(ClassifierTexts.IncludeWhereOrderLimit);

    [Benchmark(Description = "full analysis, 1,000-char")]
    public SqlClassification Full1000() => _classifier.ClassifyWithoutScreen(ClassifierTexts.IncludeThenInclude);

    [Benchmark(Description = "full analysis, 600-char audit")]
    public SqlClassification FullDeclined() => _classifier.ClassifyWithoutScreen(ClassifierTexts.AuditEntriesByKind);

    [Benchmark(Description = "ClassifyCached hit, 600-char")]
    public SqlClassification ClassifyCached600() => _classifier.ClassifyCached(ClassifierTexts.IncludeWhereOrderLimit);

    [Benchmark(Description = "ClassifyCached hit, 1,000-char")]
    public SqlClassification ClassifyCached1000() => _classifier.ClassifyCached(ClassifierTexts.IncludeThenInclude);
}
