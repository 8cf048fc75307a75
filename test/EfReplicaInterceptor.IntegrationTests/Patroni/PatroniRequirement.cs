using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>What every Patroni fixture checks before it starts a cluster.</summary>
internal static class PatroniRequirement
{
    /// <summary>
    /// Returns when Patroni and etcd are installed. Otherwise fails the fixture where they are required (CI, or
    /// <see cref="PatroniPrograms.RequireEnvironmentVariable"/> set) and skips it elsewhere, naming the install script.
    /// </summary>
    public static void EnsureInstalled()
    {
        if (PatroniPrograms.TryLocate(out _, out var problem))
        {
            return;
        }

        if (PatroniPrograms.AreRequired)
        {
            Assert.Fail($"Patroni is required here (CI=true or {PatroniPrograms.RequireEnvironmentVariable}=1) but missing. {problem}");
        }

        Assert.Ignore(problem ?? "Patroni is not installed.");
    }
}
