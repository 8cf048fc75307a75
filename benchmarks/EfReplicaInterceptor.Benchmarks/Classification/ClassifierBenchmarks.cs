using BenchmarkDotNet.Attributes;

namespace EfReplicaInterceptor.Benchmarks.Classification;

/// <summary>
/// What classifying a command costs. The texts are SQL as EF Core 10 and Npgsql generate it: an Include with a filter, an
/// ordering and a limit (about 600 characters), and a two-level Include (about 1,000 characters). <c>Classify</c> reads the
/// whole text every time (a query EF has not seen before); <c>ClassifyCached</c> is the router's path for a text EF reuses,
/// found by reference in the cache. Targets: at most 1 µs and 0 bytes for the first, 50 ns and 0 bytes for the second.
/// </summary>
[MemoryDiagnoser]
public class ClassifierBenchmarks
{
    /// <summary><c>context.Blogs.Include(b => b.Posts).Where(...).OrderByDescending(...).Take(n)</c>.</summary>
    public static readonly string IncludeWhereOrderLimit = """
        SELECT b0."Id", b0."CreatedOn", b0."ExternalId", b0."Mood", b0."Name", b0."Rating", b0."Scores", b0."Status", b0."Tags", b0."Url", b0.xmin, p."Id", p."BlogId", p."Content", p."Kind", p."PublishedOn", p."Title", p."Views"
        FROM (
            SELECT b."Id", b."CreatedOn", b."ExternalId", b."Mood", b."Name", b."Rating", b."Scores", b."Status", b."Tags", b."Url", b.xmin
            FROM "Blogs" AS b
            WHERE b."Rating" > @minRating AND b."Name" ILIKE @term
            ORDER BY b."CreatedOn" DESC
            LIMIT @p
        ) AS b0
        LEFT JOIN "Posts" AS p ON b0."Id" = p."BlogId"
        ORDER BY b0."CreatedOn" DESC, b0."Id"
        """;

    /// <summary><c>context.Blogs.Include(b => b.Posts).ThenInclude(p => p.Comments).Where(...).OrderBy(...).Take(n)</c>.</summary>
    public static readonly string IncludeThenInclude = """
        SELECT b0."Id", b0."CreatedOn", b0."ExternalId", b0."Mood", b0."Name", b0."Rating", b0."Scores", b0."Status", b0."Tags", b0."Url", b0.xmin, b0."Address_City", b0."Address_Country", b0.c, s."Id", s."BlogId", s."Content", s."Kind", s."PublishedOn", s."Title", s."Views", s."Id0", s."At", s."PostId", s."Text"
        FROM (
            SELECT b."Id", b."CreatedOn", b."ExternalId", b."Mood", b."Name", b."Rating", b."Scores", b."Status", b."Tags", b."Url", b.xmin, b."Address_City", b."Address_Country", b."Settings" AS c
            FROM "Blogs" AS b
            WHERE b."Name" LIKE 'Hot%' AND b."Rating" >= @minRating AND b."Status" <> 'Archived'
            ORDER BY b."Name"
            LIMIT @p
        ) AS b0
        LEFT JOIN (
            SELECT p."Id", p."BlogId", p."Content", p."Kind", p."PublishedOn", p."Title", p."Views", c."Id" AS "Id0", c."At", c."PostId", c."Text"
            FROM "Posts" AS p
            LEFT JOIN "Comments" AS c ON p."Id" = c."PostId"
        ) AS s ON b0."Id" = s."BlogId"
        ORDER BY b0."Name", b0."Id", s."Id"
        """;

    private readonly SqlClassifier _classifier = new(["audit.log_access", "touch_order"]);

    [GlobalSetup]
    public void Setup()
    {
        // The texts must be what they claim: reads of the intended sizes.
        foreach (var (text, min, max) in new[] { (IncludeWhereOrderLimit, 550, 650), (IncludeThenInclude, 950, 1_050) })
        {
            if (text.Length < min || text.Length > max || !_classifier.Classify(text).IsReplicaSafe)
            {
                throw new InvalidOperationException($"Benchmark text of {text.Length} characters is not a read of {min}-{max} characters.");
            }
        }

        _classifier.ClassifyCached(IncludeWhereOrderLimit);
        _classifier.ClassifyCached(IncludeThenInclude);
    }

    [Benchmark(Baseline = true, Description = "Classify, 600-char Include")]
    public SqlClassification Classify600() => _classifier.Classify(IncludeWhereOrderLimit);

    [Benchmark(Description = "Classify, 1,000-char ThenInclude")]
    public SqlClassification Classify1000() => _classifier.Classify(IncludeThenInclude);

    [Benchmark(Description = "ClassifyCached hit, 600-char")]
    public SqlClassification ClassifyCached600() => _classifier.ClassifyCached(IncludeWhereOrderLimit);

    [Benchmark(Description = "ClassifyCached hit, 1,000-char")]
    public SqlClassification ClassifyCached1000() => _classifier.ClassifyCached(IncludeThenInclude);
}
