using System.Reflection;
using System.Text;
using PublicApiGenerator;

namespace EfReplicaInterceptor.Shared;

/// <summary>
/// A package's public surface checked against its committed baseline (<c>src/&lt;package&gt;/PublicAPI.txt</c>), shared by
/// the test projects of every package (linked, one copy). Every public and protected member of the assembly is rendered,
/// in every namespace: the entry points live in <c>Microsoft.*</c> namespaces (the namespaces of the types they extend),
/// which the generator would leave out by default. The rendering (PublicApiGenerator) is deterministic and shows full
/// signatures: parameter names, default values, nullable annotations, generic constraints, <c>ref</c>/<c>in</c>/<c>out</c>/
/// <c>params</c>, and the attributes that change how the API may be used (<c>Obsolete</c>, <c>AttributeUsage</c>, …).
/// </summary>
/// <remarks>
/// <para>The baseline file starts with a header of <c>//</c> lines that say what is public on purpose; it is kept as is
/// and not compared. When the surface differs the test fails with a line diff (<c>-</c> in the baseline only, <c>+</c> in
/// the assembly only) and writes what it found to <c>PublicAPI.received.txt</c> beside the baseline (git-ignored).</para>
/// <para>To accept an intended change, run the test with <c>EFREPLICA_APPROVE_API=1</c>: it rewrites the baseline (header
/// kept) and passes; review the change with <c>git diff</c> and commit it with the code.</para>
/// </remarks>
internal static class PublicApiBaseline
{
    /// <summary>The environment variable that turns a mismatch into a rewrite of the baseline.</summary>
    public const string ApproveVariable = "EFREPLICA_APPROVE_API";

    private const int DiffContext = 2;

    /// <summary>The assembly's whole public surface, as the baseline holds it (without the header).</summary>
    public static string Render(Assembly assembly) => Normalize(assembly.GeneratePublicApi(new ApiGeneratorOptions
    {
        // Build details, not API.
        ExcludeAttributes = ["System.Runtime.Versioning.TargetFrameworkAttribute", "System.Reflection.AssemblyMetadataAttribute"],
        // Every namespace: the generator denies System.* and Microsoft.* unless told otherwise.
        DenyNamespacePrefixes = [],
    }));

    /// <summary>
    /// Asserts that <paramref name="assembly"/>'s surface is the baseline of <paramref name="projectDirectory"/> (a folder
    /// under <c>src/</c>), or rewrites the baseline when <see cref="ApproveVariable"/> is set.
    /// </summary>
    public static void Verify(Assembly assembly, string projectDirectory)
    {
        var directory = Path.Combine(RepositoryRoot(), "src", projectDirectory);
        var baselinePath = Path.Combine(directory, "PublicAPI.txt");
        var receivedPath = Path.Combine(directory, "PublicAPI.received.txt");
        var actual = Render(assembly);
        var (header, baseline) = File.Exists(baselinePath) ? Split(File.ReadAllText(baselinePath)) : (string.Empty, string.Empty);

        if (actual == baseline)
        {
            File.Delete(receivedPath);
            return;
        }

        if (Environment.GetEnvironmentVariable(ApproveVariable) is "1" or "true")
        {
            File.WriteAllText(baselinePath, header + actual);
            File.Delete(receivedPath);
            TestContext.Progress.WriteLine($"{ApproveVariable} is set: rewrote {baselinePath}. Review it with git diff before committing.");
            return;
        }

        File.WriteAllText(receivedPath, actual);
        Assert.Fail($"""
            The public API of {assembly.GetName().Name} differs from {baselinePath}
            (- only in the baseline, + only in the assembly):

            {Diff(baseline, actual)}
            What was found is in {receivedPath}. If the change is intended, run the test again with {ApproveVariable}=1 to
            rewrite the baseline (its header is kept), and commit the baseline with the change.
            """);
    }

    /// <summary>The leading <c>//</c> lines (and blank lines among them) of a baseline, and the rest normalized.</summary>
    public static (string Header, string Api) Split(string text)
    {
        var lines = Normalize(text).Split('\n');
        var headerLines = lines.TakeWhile(line => line.StartsWith("//", StringComparison.Ordinal) || line.Length == 0).Count();
        var header = headerLines == 0 ? string.Empty : string.Join('\n', lines[..headerLines]) + "\n";
        return (header, Normalize(string.Join('\n', lines[headerLines..])));
    }

    /// <summary>A line diff of <paramref name="expected"/> and <paramref name="actual"/> (longest common subsequence), with context.</summary>
    public static string Diff(string expected, string actual)
    {
        var a = expected.TrimEnd('\n').Split('\n');
        var b = actual.TrimEnd('\n').Split('\n');
        var common = new int[a.Length + 1, b.Length + 1];
        for (var i = a.Length - 1; i >= 0; i--)
        {
            for (var j = b.Length - 1; j >= 0; j--)
            {
                common[i, j] = a[i] == b[j] ? common[i + 1, j + 1] + 1 : Math.Max(common[i + 1, j], common[i, j + 1]);
            }
        }

        var edits = new List<(char Kind, string Line)>();
        int x = 0, y = 0;
        while (x < a.Length || y < b.Length)
        {
            if (x < a.Length && y < b.Length && a[x] == b[y])
            {
                edits.Add((' ', a[x++]));
                y++;
            }
            else if (x < a.Length && (y == b.Length || common[x + 1, y] >= common[x, y + 1]))
            {
                edits.Add(('-', a[x++]));
            }
            else
            {
                edits.Add(('+', b[y++]));
            }
        }

        var text = new StringBuilder();
        var lastShown = -1;
        for (var k = 0; k < edits.Count; k++)
        {
            var near = edits.Skip(Math.Max(0, k - DiffContext)).Take(2 * DiffContext + 1).Any(edit => edit.Kind != ' ');
            if (!near)
            {
                continue;
            }

            if (lastShown >= 0 && k > lastShown + 1)
            {
                text.Append("  ...\n");
            }

            text.Append(edits[k].Kind).Append(' ').Append(edits[k].Line).Append('\n');
            lastShown = k;
        }

        return text.ToString();
    }

    private static string Normalize(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).Trim('\n') + "\n";

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
}
