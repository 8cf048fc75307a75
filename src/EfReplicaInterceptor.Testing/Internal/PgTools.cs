namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// The PostgreSQL programs and the user they run as: directly when this process is not root,
/// through <c>runuser -u &lt;user&gt; --</c> when it is (initdb, pg_ctl and postgres refuse root).
/// </summary>
internal sealed class PgTools
{
    /// <summary>The user created when running as root on a machine without a <c>postgres</c> user.</summary>
    public const string DedicatedUser = "efreplica-pg";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static PgTools? cached;

    private PgTools(string binDirectory, string? runAsUser)
    {
        BinDirectory = binDirectory;
        RunAsUser = runAsUser;
    }

    public string BinDirectory { get; }

    /// <summary>The user the server programs run as, or null to run them as this process's user.</summary>
    public string? RunAsUser { get; }

    /// <summary>The name of the user owning the servers' files, for keys and messages.</summary>
    public string OwnerName => RunAsUser ?? Environment.UserName;

    /// <summary>Locates the programs and, as root, makes sure an unprivileged user exists. Cached per process.</summary>
    public static async Task<PgTools> GetAsync(CancellationToken cancellationToken)
    {
        if (cached is { } ready)
        {
            return ready;
        }

        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (cached is { } raced)
            {
                return raced;
            }

            var binDirectory = PostgresBinaries.Locate();
            var runAsUser = LinuxProcesses.IsRoot ? await EnsureUnprivilegedUserAsync(cancellationToken).ConfigureAwait(false) : null;
            cached = new PgTools(binDirectory, runAsUser);
            return cached;
        }
        finally
        {
            Gate.Release();
        }
    }

    public string PathOf(string program) => Path.Combine(BinDirectory, program);

    /// <summary>Runs one of the PostgreSQL programs as <see cref="RunAsUser"/>.</summary>
    public Task<ToolResult> RunAsync(string program, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout, CancellationToken cancellationToken) =>
        ToolRunner.RunAsync(PathOf(program), arguments, RunAsUser, workingDirectory, timeout, cancellationToken);

    private static async Task<string> EnsureUnprivilegedUserAsync(CancellationToken cancellationToken)
    {
        var timeout = TimeSpan.FromSeconds(30);
        foreach (var candidate in new[] { "postgres", DedicatedUser })
        {
            if ((await ToolRunner.RunAsync("id", ["-u", candidate], null, "/", timeout, cancellationToken).ConfigureAwait(false)).Succeeded)
            {
                return candidate;
            }
        }

        var created = await ToolRunner.RunAsync(
            "useradd",
            ["--system", "--no-create-home", DedicatedUser],
            null,
            "/",
            timeout,
            cancellationToken).ConfigureAwait(false);

        // Exit code 9: another process created the user in the meantime.
        if (!created.Succeeded && created.ExitCode != 9)
        {
            throw new InvalidOperationException(
                "PostgreSQL refuses to run as root, and this process runs as root on a machine without a 'postgres' user; "
                + $"creating the user '{DedicatedUser}' to run the servers failed. {created.Describe()}");
        }

        return DedicatedUser;
    }
}
