using PublicApiGenerator;

namespace EfReplicaInterceptor.AspNetCore.Tests.PublicApi;

/// <summary>
/// The ASP.NET Core package's public surface is the committed baseline <c>src/EfReplicaInterceptor.AspNetCore/PublicAPI.txt</c>,
/// checked as the core library's is: a change to it is a deliberate edit of that file, reviewed with the code. When they differ the test fails and writes what it found to
/// <c>PublicAPI.received.txt</c> beside the baseline (git-ignored): compare, and copy it over the baseline if the change is
/// intended.
/// </summary>
[Category("Architecture")]
public sealed class PublicApiTests
{
    [Test]
    public void The_public_surface_is_the_committed_baseline()
    {
        var directory = Path.Combine(RepositoryRoot(), "src", "EfReplicaInterceptor.AspNetCore");
        var baselinePath = Path.Combine(directory, "PublicAPI.txt");
        var receivedPath = Path.Combine(directory, "PublicAPI.received.txt");
        var actual = Normalize(typeof(EfReplicaConsistencyOptions).Assembly.GeneratePublicApi(new ApiGeneratorOptions
        {
            ExcludeAttributes = ["System.Runtime.Versioning.TargetFrameworkAttribute", "System.Reflection.AssemblyMetadataAttribute"],
            // The entry points live in the namespaces of the types they extend, which the generator leaves out by default
            // (it denies every Microsoft.* namespace).
            AllowNamespacePrefixes = ["Microsoft.AspNetCore.Builder", "Microsoft.Extensions.DependencyInjection"],
        }));
        var baseline = File.Exists(baselinePath) ? Normalize(File.ReadAllText(baselinePath)) : string.Empty;

        if (actual != baseline)
        {
            File.WriteAllText(receivedPath, actual);
        }
        else if (File.Exists(receivedPath))
        {
            File.Delete(receivedPath);
        }

        Assert.That(actual, Is.EqualTo(baseline),
            $"The public API differs from {baselinePath}; what was found is in {receivedPath}. If the change is intended, copy it over the baseline.");
    }

    private static string Normalize(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd() + "\n";

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
