using EfReplicaInterceptor.Shared;

namespace EfReplicaInterceptor.AspNetCore.Tests.PublicApi;

/// <summary>
/// The ASP.NET Core package's public surface is the committed baseline <c>src/EfReplicaInterceptor.AspNetCore/PublicAPI.txt</c>,
/// checked as the core library's is (see <see cref="PublicApiBaseline"/>, shared by both test projects): every member in
/// every namespace, entry points included. To accept an intended change run the test with <c>EFREPLICA_APPROVE_API=1</c>,
/// which rewrites the baseline, and commit it.
/// </summary>
[Category("Architecture")]
public sealed class PublicApiTests
{
    [Test]
    public void The_public_surface_is_the_committed_baseline()
        => PublicApiBaseline.Verify(typeof(EfReplicaConsistencyOptions).Assembly, "EfReplicaInterceptor.AspNetCore");
}
