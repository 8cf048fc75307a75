// A copy of test/EfReplicaInterceptor.Tests/Classification/SqlCorpus.cs (test projects cannot reference each other): keep them equal.

namespace EfReplicaInterceptor.IntegrationTests.Classification;

/// <summary>One statement of the classifier corpus and the classification it must get.</summary>
/// <param name="Source">File and line of the header, for test names.</param>
/// <param name="Sql">The command text.</param>
/// <param name="Expected">The expected classification.</param>
/// <param name="OracleError">The SQLSTATE the standby oracle expects for a reason other than read-only, if any.</param>
public sealed record CorpusEntry(string Source, string Sql, SqlClassification Expected, string? OracleError)
{
    public override string ToString() => Source;
}

/// <summary>
/// Reads the corpus files in <c>Classification/Corpus/*.sql</c> (format in <c>Corpus/README.md</c>). They are read from the
/// source tree, found by walking up from the test binaries to the solution.
/// </summary>
public static class SqlCorpus
{
    private const string Header = "-- expect: ";
    private const string OracleHeader = "-- oracle-error: ";

    /// <summary>The application write functions the corpus is classified with (they exist in the oracle's schema).</summary>
    public static readonly string[] WriteFunctions = ["audit.log_access", "touch_order", "public.order_touch"];

    public static string Directory { get; } = FindDirectory();

    public static IReadOnlyList<CorpusEntry> Entries { get; } = Load();

    private static string FindDirectory()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var copied = Path.Combine(directory.FullName, "Classification", "Corpus");
            if (System.IO.Directory.Exists(copied) && System.IO.Directory.EnumerateFiles(copied, "*.sql").Any())
            {
                return copied;
            }

            var source = Path.Combine(directory.FullName, "test", "EfReplicaInterceptor.Tests", "Classification", "Corpus");
            if (System.IO.Directory.Exists(source))
            {
                return source;
            }
        }

        throw new DirectoryNotFoundException($"The classifier corpus (test/EfReplicaInterceptor.Tests/Classification/Corpus) was not found above {AppContext.BaseDirectory}.");
    }

    private static List<CorpusEntry> Load()
    {
        var reasons = Enum.GetValues<RoutingReason>().ToDictionary(RoutingReasons.GetName);
        var entries = new List<CorpusEntry>();
        foreach (var path in System.IO.Directory.EnumerateFiles(Directory, "*.sql").Order(StringComparer.Ordinal))
        {
            var file = Path.GetFileName(path);
            var lines = File.ReadAllText(path).Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                if (!lines[i].StartsWith(Header, StringComparison.Ordinal))
                {
                    continue;
                }

                var source = $"{file}:{i + 1}";
                var parts = lines[i][Header.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length != 2 || parts[0] is not ("replica" or "primary") || !reasons.TryGetValue(parts[1], out var reason))
                {
                    throw new FormatException($"{source}: bad header '{lines[i]}'.");
                }

                var target = parts[0] == "replica" ? RoutingTarget.Replica : RoutingTarget.Primary;
                if ((target == RoutingTarget.Replica) != (reason == RoutingReason.Read))
                {
                    throw new FormatException($"{source}: a replica entry must be a read, and a read must go to a replica.");
                }

                string? oracleError = null;
                var body = i + 1;
                if (body < lines.Length && lines[body].StartsWith(OracleHeader, StringComparison.Ordinal))
                {
                    oracleError = lines[body][OracleHeader.Length..].Trim();
                    body++;
                }

                var end = body;
                while (end < lines.Length && !lines[end].StartsWith(Header, StringComparison.Ordinal))
                {
                    end++;
                }

                var sql = string.Join('\n', lines[body..end]).TrimEnd('\n');
                entries.Add(new CorpusEntry(source, sql, new SqlClassification(target, reason), oracleError));
                i = end - 1;
            }
        }

        return entries;
    }
}
