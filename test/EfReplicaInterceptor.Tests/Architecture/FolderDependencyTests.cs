using System.Diagnostics;
using System.Globalization;

namespace EfReplicaInterceptor.Tests.Architecture;

/// <summary>
/// The library's top-level folders depend on each other one way, and its files stay short enough to read.
/// The unit is the folder, not the namespace: see <see cref="FolderDependencyAnalysis"/>.
/// </summary>
[Category("Architecture")]
public sealed class FolderDependencyTests
{
    private const int MaxLines = 350;

    /// <summary>
    /// Files allowed over <see cref="MaxLines"/>, each with the reason. Keep it empty: an entry is a debt with a reason,
    /// and an entry for a file that no longer exists or is now short enough fails the test so the list stays honest.
    /// </summary>
    private static readonly Dictionary<string, string> LongFilesAllowed = new(StringComparer.Ordinal)
    {
        ["Classification/SqlLexer.cs"] = "one thing: PostgreSQL's lexical rules (quotes, dollar quotes, comments, escapes), proven by the corpus and fuzz tests; split, a rule and its neighbours would sit in different files",
        ["Classification/SqlReadScreen.cs"] = "one thing: the vectorised screen with its 256-bit and 128-bit paths side by side, which must stay equivalent (both proven by the same tests)",
    };

    private static readonly Lazy<IReadOnlyList<Microsoft.CodeAnalysis.MetadataReference>> References = new(FolderDependencyAnalysis.ReferencesOfThisProcess);

    private static readonly Lazy<(string Directory, IReadOnlyList<SourceFile> Files)> Library = new(() =>
    {
        var directory = Path.Combine(RepositoryRoot(), "src", "EfReplicaInterceptor");
        return (directory, FolderDependencyAnalysis.ReadSources(directory));
    });

    [Test]
    public void Folders_of_the_library_depend_on_each_other_without_cycles()
    {
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var graph = FolderDependencyAnalysis.Analyze(Library.Value.Files, References.Value);
        clock.Stop();
        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;

        TestContext.Out.WriteLine(graph.DescribeEdges());
        TestContext.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Analysed {Library.Value.Files.Count} files in {clock.ElapsedMilliseconds} ms ({cpu.TotalMilliseconds:F0} ms of CPU, Roslyn's JIT included)."));

        Assert.That(graph.BindingProblems, Is.Empty,
            "The library's sources did not bind cleanly, so some uses may be missing from the graph; fix the analysis (references, implicit usings, language version):\n"
            + string.Join("\n", graph.BindingProblems.Take(20)));
        Assert.That(graph.Units, Has.Count.GreaterThan(1), "No folders found: the analysis did not see the library.");
        Assert.That(graph.Edges, Is.Not.Empty, "No folder uses another: the analysis bound nothing.");

        // The tangles are the assertion (short in "But was"); the message carries every cycle and the uses behind its arrows.
        Assert.That(graph.TangledComponents(), Is.Empty,
            "The library's folders depend on each other in cycles; remove the uses behind an arrow of each cycle:\n" + graph.DescribeCycles());
    }

    [Test]
    public void Source_files_of_the_library_are_at_most_350_lines()
    {
        var lengths = Library.Value.Files.ToDictionary(f => f.Path, f => LineCount(f.Text), StringComparer.Ordinal);

        var tooLong = lengths
            .Where(f => f.Value > MaxLines && !LongFilesAllowed.ContainsKey(f.Key))
            .OrderByDescending(f => f.Value)
            .ThenBy(f => f.Key, StringComparer.Ordinal)
            .Select(f => string.Create(CultureInfo.InvariantCulture, $"  {f.Key}: {f.Value} lines"))
            .ToList();
        var stale = LongFilesAllowed.Keys
            .Where(path => !lengths.TryGetValue(path, out var lines) || lines <= MaxLines)
            .Order(StringComparer.Ordinal)
            .Select(path => $"  {path}: allowed to be long but is missing or no longer over {MaxLines} lines; remove it from the allow-list")
            .ToList();

        Assert.That(tooLong.Concat(stale), Is.Empty,
            $"Source files over {MaxLines} lines (split them, or allow them with a reason in {nameof(LongFilesAllowed)}):\n" + string.Join("\n", tooLong.Concat(stale)));
    }

    [Test]
    public void The_analysis_finds_a_cycle_made_through_partial_qualification_and_root_namespace_types()
    {
        // Folder A and folder B use each other; B's type is in the parent namespace although it sits in folder B,
        // and A names it by partial qualification, which no `using` line shows.
        var graph = Analyze(
            new SourceFile("A/Alpha.cs", """
                namespace Fake.A;
                public sealed class Alpha
                {
                    public Beta? Partner { get; set; }
                }
                """),
            new SourceFile("B/Beta.cs", """
                namespace Fake;
                public sealed class Beta
                {
                    public A.Alpha? Partner { get; set; }
                }
                """),
            new SourceFile("C/Gamma.cs", """
                namespace Fake.C;
                public static class Gamma
                {
                    public static int Use()
                    {
                        var made = Factory.Make();
                        return made.Count;
                    }
                }
                """),
            new SourceFile("Factory.cs", """
                namespace Fake;
                public static class Factory
                {
                    public static List<Beta> Make() => new();
                }
                """));

        Assert.That(graph.BindingProblems, Is.Empty);
        Assert.That(graph.Units, Is.EqualTo(new[] { FolderDependencyAnalysis.RootUnit, "A", "B", "C" }));
        Assert.That(graph.Edges.Select(e => e.ToString()), Is.EqualTo(new[]
        {
            "(root) -> B", // Factory names Beta.
            "A -> B",
            "B -> A",
            "C -> (root)", // Factory.Make().
            "C -> B", // `var` is List<Beta>, never spelt in C.
        }));
        Assert.That(graph.Edge("A", "B").Example, Is.EqualTo(new SymbolUse("A/Alpha.cs", 4, "Fake.Beta", "B/Beta.cs")));
        Assert.That(graph.Edge("B", "A").Example, Is.EqualTo(new SymbolUse("B/Beta.cs", 4, "Fake.A.Alpha", "A/Alpha.cs")));

        Assert.That(graph.TangledComponents(), Is.EqualTo(new[] { new[] { "A", "B" } }));
        Assert.That(graph.Cycles(100, out var complete), Is.EqualTo(new[] { new[] { "A", "B" } }));
        Assert.That(complete, Is.True);
        var description = graph.DescribeCycles();
        Assert.That(description, Does.Contain("Cycle 1: A -> B -> A"));
        Assert.That(description, Does.Contain("A -> B: A/Alpha.cs:4 uses Fake.Beta (declared in B/Beta.cs)"));
        Assert.That(description, Does.Contain("B -> A: B/Beta.cs:4 uses Fake.A.Alpha (declared in A/Alpha.cs)"));
    }

    [Test]
    public void The_analysis_passes_folders_that_depend_one_way()
    {
        // A uses B by a member access, an extension method and a target-typed new(); B names A only in a doc comment.
        var graph = Analyze(
            new SourceFile("A/Alpha.cs", """
                namespace Fake.A;
                public sealed class Alpha
                {
                    private readonly B.Beta beta = new();
                    public int Twice() => beta.Value.Doubled();
                }
                """),
            new SourceFile("B/Beta.cs", """
                namespace Fake.B;
                /// <summary>Made for <see cref="Fake.A.Alpha"/>: documentation is not a dependency.</summary>
                public sealed class Beta
                {
                    public int Value { get; } = 21;
                }
                """),
            new SourceFile("B/BetaExtensions.cs", """
                namespace Fake;
                public static class BetaExtensions
                {
                    public static int Doubled(this int value) => value * 2;
                }
                """));

        Assert.That(graph.BindingProblems, Is.Empty);
        Assert.That(graph.Edges.Select(e => e.ToString()), Is.EqualTo(new[] { "A -> B" }));
        Assert.That(graph.Edge("A", "B").Count, Is.EqualTo(4)); // Beta, new(), Value, Doubled; `B.` is a namespace, not a folder.
        Assert.That(graph.TangledComponents(), Is.Empty);
        Assert.That(graph.Cycles(100, out _), Is.Empty);
        Assert.That(graph.DescribeCycles(), Is.Empty);
    }

    [Test]
    public void The_analysis_reports_names_it_cannot_bind_rather_than_missing_their_edges()
    {
        var graph = Analyze(
            new SourceFile("A/Alpha.cs", """
                namespace Fake.A;
                public sealed class Alpha
                {
                    public int Count() => Missing.Thing();
                }
                """));

        Assert.That(graph.BindingProblems, Is.EqualTo(new[] { "A/Alpha.cs:4: the name 'Missing' binds to no symbol", "A/Alpha.cs:4: the name 'Thing' binds to no symbol" }));
    }

    private static FolderGraph Analyze(params SourceFile[] files) =>
        FolderDependencyAnalysis.Analyze(files, References.Value, "Fake");

    /// <summary>Lines as an editor numbers them: a final line break does not start another line.</summary>
    private static int LineCount(string text)
    {
        if (text.Length == 0)
        {
            return 0;
        }
        var breaks = text.Count(c => c == '\n');
        return text.EndsWith('\n') ? breaks : breaks + 1;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EfReplicaInterceptor.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"No EfReplicaInterceptor.sln above {TestContext.CurrentContext.TestDirectory}.");
    }
}
