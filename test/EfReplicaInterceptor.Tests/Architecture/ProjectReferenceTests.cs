using System.Xml.Linq;

namespace EfReplicaInterceptor.Tests.Architecture;

/// <summary>
/// Product code never depends on test code: no project under <c>src/</c> references a project under <c>test/</c>. Tests may
/// reference the product, the samples among it (the ASP.NET Core tests start the sample), never the other way. Read from the
/// project files themselves, so a reference added by hand is seen whatever it builds.
/// </summary>
[Category("Architecture")]
public sealed class ProjectReferenceTests
{
    [Test]
    public void No_project_under_src_references_a_project_under_test()
    {
        var root = RepositoryRoot();
        var test = Path.Combine(root, "test") + Path.DirectorySeparatorChar;
        var references = Directory.GetFiles(Path.Combine(root, "src"), "*.csproj", SearchOption.AllDirectories)
            .Where(project => !IsBuildOutput(root, project))
            .SelectMany(project => ProjectReferences(project).Select(target => (Project: project, Target: target)))
            .ToList();

        var intoTest = references
            .Where(reference => reference.Target.StartsWith(test, StringComparison.Ordinal))
            .Select(reference => $"  {Relative(root, reference.Project)} -> {Relative(root, reference.Target)}")
            .ToList();

        Assert.That(references, Is.Not.Empty, "No project reference found under src/: the project files were not read.");
        Assert.That(intoTest, Is.Empty,
            "Product code references test code; move what it needs into a project under src/ (as the shop model is in "
            + "src/EfReplicaInterceptor.Samples.Shop) and let the tests reference that:\n" + string.Join("\n", intoTest));
    }

    [Test]
    public void A_reference_into_test_is_recognised()
    {
        // The reader the test above relies on: a reference written as the demo's used to be resolves under test/.
        var directory = Path.Combine(Path.GetTempPath(), "efreplica-refs-" + Guid.NewGuid().ToString("N"), "src", "Demo");
        Directory.CreateDirectory(directory);
        try
        {
            var project = Path.Combine(directory, "Demo.csproj");
            File.WriteAllText(project, """
                <Project Sdk="Microsoft.NET.Sdk">
                  <ItemGroup>
                    <ProjectReference Include="..\..\test\Support\Support.csproj" />
                  </ItemGroup>
                </Project>
                """);

            var expected = Path.GetFullPath(Path.Combine(directory, "..", "..", "test", "Support", "Support.csproj"));
            Assert.That(ProjectReferences(project), Is.EqualTo(new[] { expected }));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(Path.GetDirectoryName(directory))!, recursive: true);
        }
    }

    /// <summary>The full paths of the projects <paramref name="project"/> references (backslashes read as separators).</summary>
    private static IEnumerable<string> ProjectReferences(string project)
        => XDocument.Load(project)
            .Descendants()
            .Where(element => element.Name.LocalName == "ProjectReference")
            .Select(element => element.Attribute("Include")?.Value)
            .OfType<string>()
            .Select(include => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(project)!, include.Replace('\\', Path.DirectorySeparatorChar))))
            .ToList();

    private static bool IsBuildOutput(string root, string path)
        => Relative(root, path).Split('/').Any(part => part is "bin" or "obj");

    private static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');

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
