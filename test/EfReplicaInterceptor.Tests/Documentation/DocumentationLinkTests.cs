using System.Globalization;
using System.Text.RegularExpressions;

namespace EfReplicaInterceptor.Tests.Documentation;

/// <summary>
/// The documentation a newcomer reads: <c>README.md</c> (the front door, kept short), every page under <c>docs/</c>, the
/// packages' own <c>src/*/README.md</c> and the benchmark notes under <c>benchmarks/</c>. Every relative link must reach a
/// file or folder of the repository, and every <c>#anchor</c> a heading of the page it names (GitHub's slug of the
/// heading). Links with a scheme (<c>https:</c>, <c>mailto:</c>) are not followed.
/// </summary>
[Category("Architecture")]
public sealed partial class DocumentationLinkTests
{
    private const int ReadmeMaxLines = 300;

    private static readonly string[] SkippedFolders = ["bin", "obj", "BenchmarkDotNet.Artifacts", "TestResults", "node_modules"];

    [Test]
    public void Every_relative_link_reaches_a_file_and_every_anchor_a_heading()
    {
        var root = RepositoryRoot();
        var problems = new List<string>();
        var checkedLinks = 0;
        foreach (var page in Pages(root))
        {
            foreach (var link in MarkdownLinks.Links(File.ReadAllText(page)))
            {
                if (Scheme().IsMatch(link.Target))
                {
                    continue;
                }

                checkedLinks++;
                var problem = Check(root, page, link.Target);
                if (problem is not null)
                {
                    problems.Add(string.Create(CultureInfo.InvariantCulture,
                        $"{Path.GetRelativePath(root, page)}:{link.Line}: ({link.Target}) {problem}"));
                }
            }
        }

        Assert.That(checkedLinks, Is.GreaterThan(0), "No relative link was found: the page list or the link reader is broken.");
        Assert.That(problems.Count, Is.Zero, $"Broken documentation links ({problems.Count}):\n" + string.Join("\n", problems));
    }

    [Test]
    public void The_pages_checked_are_the_readme_every_docs_page_and_the_package_readmes()
    {
        var root = RepositoryRoot();
        var pages = Pages(root).Select(page => Path.GetRelativePath(root, page).Replace('\\', '/')).ToList();
        var docs = Directory.GetFiles(Path.Combine(root, "docs"), "*.md", SearchOption.AllDirectories)
            .Select(page => Path.GetRelativePath(root, page).Replace('\\', '/'));
        var packageReadmes = Directory.GetDirectories(Path.Combine(root, "src"))
            .Select(project => Path.Combine(project, "README.md"))
            .Where(File.Exists)
            .Select(page => Path.GetRelativePath(root, page).Replace('\\', '/'));

        Assert.That(pages, Does.Contain("README.md").And.Contain("docs/ARCHITECTURE.md"));
        Assert.That(pages, Is.SupersetOf(docs).And.SupersetOf(packageReadmes));
    }

    [Test]
    public void The_readme_is_a_front_door_of_at_most_300_lines()
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), "README.md")).Length;

        Assert.That(lines, Is.LessThanOrEqualTo(ReadmeMaxLines),
            $"README.md has {lines} lines: it is the front door (what, why, try it, quickstart, routing rules, the map of docs/). "
            + "Move the detail into a page under docs/ and link it from the map.");
    }

    /// <summary>What is wrong with a relative link from <paramref name="page"/>, or null when it resolves.</summary>
    private static string? Check(string root, string page, string target)
    {
        var hash = target.IndexOf('#', StringComparison.Ordinal);
        var path = Uri.UnescapeDataString(hash < 0 ? target : target[..hash]);
        var anchor = hash < 0 ? null : Uri.UnescapeDataString(target[(hash + 1)..]);
        if (path.StartsWith('/'))
        {
            return "is absolute: write it relative to the page, so that it works in a clone and on GitHub";
        }

        var resolved = path.Length == 0 ? page : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, path));
        if (!resolved.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) && resolved != root)
        {
            return "leaves the repository";
        }

        if (!File.Exists(resolved) && !Directory.Exists(resolved))
        {
            return $"no such file or folder: {Path.GetRelativePath(root, resolved)}";
        }

        if (anchor is null)
        {
            return null;
        }

        if (!resolved.EndsWith(".md", StringComparison.OrdinalIgnoreCase))
        {
            return "an anchor into a file that is not markdown cannot be checked";
        }

        var anchors = MarkdownLinks.Anchors(File.ReadAllText(resolved));
        return anchors.Contains(anchor)
            ? null
            : $"no heading of {Path.GetRelativePath(root, resolved)} has the anchor #{anchor}; it has: {string.Join(", ", anchors.Order(StringComparer.Ordinal))}";
    }

    /// <summary>README.md, docs/**/*.md, src/*/README.md (the packages' own, when present) and benchmarks/**/*.md.</summary>
    private static IEnumerable<string> Pages(string root)
    {
        yield return Path.Combine(root, "README.md");
        foreach (var page in MarkdownUnder(Path.Combine(root, "docs")))
        {
            yield return page;
        }

        foreach (var project in Directory.GetDirectories(Path.Combine(root, "src")).Order(StringComparer.Ordinal))
        {
            var readme = Path.Combine(project, "README.md");
            if (File.Exists(readme))
            {
                yield return readme;
            }
        }

        foreach (var page in MarkdownUnder(Path.Combine(root, "benchmarks")))
        {
            yield return page;
        }
    }

    private static IEnumerable<string> MarkdownUnder(string directory)
    {
        if (!Directory.Exists(directory))
        {
            yield break;
        }

        foreach (var page in Directory.GetFiles(directory, "*.md").Order(StringComparer.Ordinal))
        {
            yield return page;
        }

        foreach (var child in Directory.GetDirectories(directory).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(child);
            if (name.StartsWith('.') || SkippedFolders.Contains(name, StringComparer.Ordinal))
            {
                continue;
            }

            foreach (var page in MarkdownUnder(child))
            {
                yield return page;
            }
        }
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

        throw new InvalidOperationException("EfReplicaInterceptor.sln not found above the test directory.");
    }

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9+.-]*:")]
    private static partial Regex Scheme();
}
