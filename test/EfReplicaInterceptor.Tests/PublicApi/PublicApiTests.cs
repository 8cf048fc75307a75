using EfReplicaInterceptor.Shared;
using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.Tests.PublicApi;

/// <summary>
/// The public surface of the core package and of the test harness package (<c>EfReplicaInterceptor.Testing</c>) is the
/// committed baseline <c>src/&lt;package&gt;/PublicAPI.txt</c>, every member in every namespace, entry points included
/// (see <see cref="PublicApiBaseline"/>): a change to it is a deliberate edit of that file, reviewed with the code. To
/// accept an intended change run <c>EFREPLICA_APPROVE_API=1 dotnet test --filter "FullyQualifiedName~PublicApi"</c>,
/// which rewrites the baselines, and commit them.
/// </summary>
[Category("Architecture")]
public sealed class PublicApiTests
{
    [Test]
    public void The_public_surface_of_the_library_is_the_committed_baseline()
        => PublicApiBaseline.Verify(typeof(EfReplicaCluster).Assembly, "EfReplicaInterceptor");

    [Test]
    public void The_public_surface_of_the_test_harness_is_the_committed_baseline()
        => PublicApiBaseline.Verify(typeof(PostgresReplicaSet).Assembly, "EfReplicaInterceptor.Testing");

    [Test]
    public void The_rendering_includes_the_entry_points_in_the_namespaces_of_the_types_they_extend()
    {
        var api = PublicApiBaseline.Render(typeof(EfReplicaCluster).Assembly);

        Assert.That(api, Does.Contain("namespace Microsoft.EntityFrameworkCore\n")
            .And.Contain("namespace Microsoft.Extensions.DependencyInjection\n")
            .And.Contain(" UsePrimary<T>(")
            .And.Contain(" AddEfReplica("));
    }

    [Test]
    public void A_changed_signature_shows_as_a_line_removed_and_a_line_added()
    {
        var diff = PublicApiBaseline.Diff("a\nb\nc(int x)\nd\ne\n", "a\nb\nc(int y)\nd\ne\n");

        Assert.That(diff, Is.EqualTo("  a\n  b\n- c(int x)\n+ c(int y)\n  d\n  e\n"));
    }

    [Test]
    public void The_header_of_a_baseline_is_kept_apart_from_the_api()
    {
        var (header, api) = PublicApiBaseline.Split("// why\n//\n// more\n\nnamespace A\n{\n}\n");

        Assert.That(header, Is.EqualTo("// why\n//\n// more\n\n"));
        Assert.That(api, Is.EqualTo("namespace A\n{\n}\n"));
    }
}
