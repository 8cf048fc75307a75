namespace EfReplicaInterceptor.Testing;

/// <summary>
/// The programs a <see cref="PatroniCluster"/> runs, <c>patroni</c> and <c>etcd</c>, and whether tests that need them must fail
/// or may skip when they are missing.
/// </summary>
public sealed class PatroniPrograms
{
    /// <summary>The environment variable naming the <c>patroni</c> program explicitly: <c>EFREPLICA_PATRONI</c>.</summary>
    public const string PatroniEnvironmentVariable = "EFREPLICA_PATRONI";

    /// <summary>The environment variable naming the <c>etcd</c> program explicitly: <c>EFREPLICA_ETCD</c>.</summary>
    public const string EtcdEnvironmentVariable = "EFREPLICA_ETCD";

    /// <summary>The environment variable that makes missing programs a failure outside CI too: <c>EFREPLICA_REQUIRE_PATRONI=1</c>.</summary>
    public const string RequireEnvironmentVariable = "EFREPLICA_REQUIRE_PATRONI";

    /// <summary>The script that installs them: <c>build/ensure-patroni.sh</c> (run by <c>build/test.sh</c>).</summary>
    public const string InstallScript = "build/ensure-patroni.sh";

    private PatroniPrograms(string patroni, string etcd)
    {
        Patroni = patroni;
        Etcd = etcd;
    }

    /// <summary>The <c>patroni</c> program.</summary>
    public string Patroni { get; }

    /// <summary>The <c>etcd</c> server program (3.4 or later).</summary>
    public string Etcd { get; }

    /// <summary>
    /// True when tests that need Patroni must fail rather than skip when it is missing: on CI (<c>CI=true</c>) and when
    /// <c>EFREPLICA_REQUIRE_PATRONI=1</c>.
    /// </summary>
    public static bool AreRequired =>
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase)
        || Environment.GetEnvironmentVariable(RequireEnvironmentVariable) is "1" or "true";

    /// <summary>
    /// Finds the programs: the files named by <c>EFREPLICA_PATRONI</c> / <c>EFREPLICA_ETCD</c>, else <c>patroni</c> / <c>etcd</c>
    /// on <c>PATH</c> or in <c>/usr/bin</c>.
    /// </summary>
    /// <param name="programs">The programs, when both were found.</param>
    /// <param name="problem">What is missing and how to install it, when not.</param>
    /// <returns>True when both were found.</returns>
    public static bool TryLocate(out PatroniPrograms? programs, out string? problem)
    {
        var patroni = Find(PatroniEnvironmentVariable, "patroni", out var patroniProblem);
        var etcd = Find(EtcdEnvironmentVariable, "etcd", out var etcdProblem);
        if (patroni is not null && etcd is not null)
        {
            programs = new PatroniPrograms(patroni, etcd);
            problem = null;
            return true;
        }

        programs = null;
        problem = string.Join(' ', new[] { patroniProblem, etcdProblem }.OfType<string>())
            + $" The Patroni tests run a real Patroni 3 cluster with etcd on loopback: run `bash {InstallScript}` (as root, or with sudo; "
            + "it installs Debian's patroni, etcd-server and python3-etcd packages), or set "
            + $"{PatroniEnvironmentVariable} and {EtcdEnvironmentVariable} to the programs. `bash build/test.sh` installs them by itself.";
        return false;
    }

    /// <summary>Finds the programs or throws.</summary>
    /// <returns>The programs.</returns>
    /// <exception cref="InvalidOperationException">One is missing; the message says how to install it.</exception>
    public static PatroniPrograms Locate() =>
        TryLocate(out var programs, out var problem) ? programs! : throw new InvalidOperationException(problem);

    private static string? Find(string variable, string program, out string? problem)
    {
        problem = null;
        var configured = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            if (File.Exists(configured))
            {
                return Path.GetFullPath(configured);
            }

            problem = $"{variable} is set to '{configured}', which is not a file.";
            return null;
        }

        var found = PostgresBinaries.FindOnPath(program) ?? (File.Exists($"/usr/bin/{program}") ? $"/usr/bin/{program}" : null);
        if (found is null)
        {
            problem = $"The '{program}' program was not found ({variable} is not set; looked on PATH and in /usr/bin).";
        }

        return found;
    }
}
