using System.Globalization;
using System.Security.Cryptography;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// The folder all sets live under (<c>/tmp/efreplica-pg</c>), one sub-folder per set with an
/// <c>owner</c> marker naming the process that owns it, and the removal of sets whose owner died.
/// </summary>
/// <remarks>
/// Layout: <c>&lt;root&gt;/&lt;set id&gt;/owner</c>, <c>&lt;root&gt;/&lt;set id&gt;/primary</c>,
/// <c>&lt;root&gt;/&lt;set id&gt;/standby1</c>, … and the servers' unix sockets directly in
/// <c>&lt;root&gt;/&lt;set id&gt;</c> (short on purpose: socket paths are limited to 107 bytes).
/// Data directory templates are <c>&lt;root&gt;/tpl-&lt;key&gt;</c>.
/// </remarks>
internal static class HarnessDirectories
{
    public const string DefaultRoot = "/tmp/efreplica-pg";

    /// <summary>
    /// Where Patroni clusters live: a root of their own, so that harness code that does not know their daemons (an older
    /// version running beside this one on a shared machine) never removes the folder of a live or abandoned cluster while its
    /// Patroni processes still run.
    /// </summary>
    public const string DefaultPatroniRoot = "/tmp/efreplica-patroni";

    /// <summary>Where PgBouncer processes live (<see cref="PgBouncer"/>): a root of their own, for the same reason as Patroni's.</summary>
    public const string DefaultPgBouncerRoot = "/tmp/efreplica-pgbouncer";
    public const string OwnerMarker = "owner";
    public const string TemplatePrefix = "tpl-";

    /// <summary>A set folder without a marker is only treated as abandoned after this long.</summary>
    private static readonly TimeSpan UnmarkedGrace = TimeSpan.FromMinutes(10);

    private static readonly Lazy<string> RootValue = new(() => ChooseRoot(DefaultRoot));
    private static readonly Lazy<string> PatroniRootValue = new(() => ChooseRoot(DefaultPatroniRoot));
    private static readonly Lazy<string> PgBouncerRootValue = new(() => ChooseRoot(DefaultPgBouncerRoot));
    private static readonly SemaphoreSlim CleanupGate = new(1, 1);

    public static string Root => RootValue.Value;

    /// <summary>The root of Patroni clusters' folders (<see cref="DefaultPatroniRoot"/>, or one of this user's own).</summary>
    public static string PatroniRoot => PatroniRootValue.Value;

    /// <summary>The root of PgBouncer processes' folders (<see cref="DefaultPgBouncerRoot"/>, or one of this user's own).</summary>
    public static string PgBouncerRoot => PgBouncerRootValue.Value;

    /// <summary>Creates a new, empty set folder with this process's marker in it.</summary>
    public static string CreateSetDirectory(bool sharedWithServerUser, string? root = null)
    {
        for (var attempt = 0; ; attempt++)
        {
            var path = Path.Combine(root ?? Root, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
            if (Directory.Exists(path))
            {
                continue;
            }

            try
            {
                Directory.CreateDirectory(path);
                File.WriteAllText(Path.Combine(path, OwnerMarker), LinuxProcesses.CurrentIdentity + Environment.NewLine);
                if (!OperatingSystem.IsWindows())
                {
                    // The server user creates its data directories and sockets here.
                    File.SetUnixFileMode(
                        path,
                        sharedWithServerUser
                            ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                              | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
                              | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute
                            : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }

                return path;
            }
            catch (IOException) when (attempt < 5)
            {
                // Lost a race for the name: try another.
            }
        }
    }

    /// <summary>
    /// Stops (<c>pg_ctl stop -m immediate</c>) and removes every set whose owning process no longer
    /// exists, left behind by test processes that crashed or were killed. Best effort: a folder that
    /// cannot be cleaned (another user's, say) is left alone.
    /// </summary>
    public static async Task CleanUpAbandonedSetsAsync(PgTools tools, CancellationToken cancellationToken, string? root = null)
    {
        await CleanupGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var directory in Directory.EnumerateDirectories(root ?? Root))
            {
                if (Path.GetFileName(directory).StartsWith(TemplatePrefix, StringComparison.Ordinal) || !IsAbandoned(directory))
                {
                    continue;
                }

                // First the daemons that would restart the servers (a Patroni cluster's Patroni and etcd), then the servers.
                DaemonProcess.KillRecorded(directory);
                try
                {
                    await StopServersUnderAsync(directory, tools, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
                }
                catch (Exception exception) when (exception is InvalidOperationException or TimeoutException or IOException)
                {
                    // Keep going: one broken leftover must not stop the tests from starting.
                }

                TryDelete(directory);
            }
        }
        finally
        {
            CleanupGate.Release();
        }
    }

    /// <summary>
    /// Stops every running server whose data directory is an immediate sub-folder of
    /// <paramref name="directory"/>: <c>pg_ctl stop -m immediate</c>, and if that fails, kills the postmaster.
    /// </summary>
    /// <returns>Descriptions of servers that could not be stopped; empty when all were.</returns>
    public static async Task<IReadOnlyList<string>> StopServersUnderAsync(string directory, PgTools tools, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }

        var running = Directory.EnumerateDirectories(directory)
            .Select(dataDirectory => (DataDirectory: dataDirectory, ProcessId: PostmasterProcessId(dataDirectory)))
            .Where(server => server.ProcessId is { } id && LinuxProcesses.IsAlive(id) && LinuxProcesses.IsPostgres(id))
            .ToList();

        var results = await Task.WhenAll(running.Select(async server =>
        {
            var stop = await tools.RunAsync(
                "pg_ctl",
                ["stop", "-D", server.DataDirectory, "-m", "immediate", "-w", "-t", Seconds(timeout)],
                directory,
                timeout + TimeSpan.FromSeconds(5),
                cancellationToken).ConfigureAwait(false);
            if (stop.Succeeded || !LinuxProcesses.IsAlive(server.ProcessId!.Value) || !LinuxProcesses.IsPostgres(server.ProcessId.Value))
            {
                return null;
            }

            try
            {
                using var postmaster = System.Diagnostics.Process.GetProcessById(server.ProcessId.Value);
                postmaster.Kill();
                return null;
            }
            catch (Exception exception) when (exception is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                return $"{server.DataDirectory} (pid {server.ProcessId}): {stop.Describe()} Killing it failed too: {exception.Message}";
            }
        })).ConfigureAwait(false);

        return [.. results.OfType<string>()];
    }

    /// <summary>The postmaster's process id from <c>postmaster.pid</c>, or null when there is none.</summary>
    public static int? PostmasterProcessId(string dataDirectory)
    {
        try
        {
            var firstLine = File.ReadLines(Path.Combine(dataDirectory, "postmaster.pid")).FirstOrDefault();
            return int.TryParse(firstLine, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Deletes a folder tree, retrying briefly; returns false when it could not.</summary>
    public static bool TryDelete(string directory)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }

                return true;
            }
            catch (IOException)
            {
                // A process that is just exiting may still create or remove files; try again.
            }
            catch (UnauthorizedAccessException)
            {
                return false;
            }

            Thread.Sleep(50 * (attempt + 1));
        }

        return !Directory.Exists(directory);
    }

    /// <summary>The last lines of a server's log file, introduced by its path, for error messages.</summary>
    public static string LogTail(string? logFile, int maxLines = 40)
    {
        if (logFile is null)
        {
            return string.Empty;
        }

        try
        {
            using var stream = new FileStream(logFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            const int MaxBytes = 16 * 1024;
            if (stream.Length > MaxBytes)
            {
                stream.Seek(-MaxBytes, SeekOrigin.End);
            }

            using var reader = new StreamReader(stream);
            var lines = reader.ReadToEnd().Split('\n').Select(line => line.TrimEnd('\r')).Where(line => line.Length > 0).ToList();
            return lines.Count == 0
                ? $"{Environment.NewLine}Server log {logFile} is empty."
                : $"{Environment.NewLine}Last lines of server log {logFile}:{Environment.NewLine}{string.Join(Environment.NewLine, lines.TakeLast(maxLines))}";
        }
        catch (FileNotFoundException)
        {
            return $"{Environment.NewLine}Server log {logFile} does not exist.";
        }
        catch (DirectoryNotFoundException)
        {
            return $"{Environment.NewLine}Server log {logFile} does not exist.";
        }
        catch (IOException exception)
        {
            return $"{Environment.NewLine}Server log {logFile} could not be read: {exception.Message}";
        }
        catch (UnauthorizedAccessException exception)
        {
            return $"{Environment.NewLine}Server log {logFile} could not be read: {exception.Message}";
        }
    }

    public static string Seconds(TimeSpan timeout) =>
        Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

    private static bool IsAbandoned(string directory)
    {
        var marker = Path.Combine(directory, OwnerMarker);
        try
        {
            if (File.Exists(marker))
            {
                return !LinuxProcesses.IsAlive(File.ReadAllText(marker).Trim());
            }

            return Directory.GetLastWriteTimeUtc(directory) < DateTime.UtcNow - UnmarkedGrace;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string ChooseRoot(string defaultRoot)
    {
        if (TryPrepareRoot(defaultRoot))
        {
            return defaultRoot;
        }

        // Another user (root, typically) owns the shared folder: use one of our own.
        var own = string.Create(CultureInfo.InvariantCulture, $"{defaultRoot}-{LinuxProcesses.EffectiveUserId ?? 0}");
        if (TryPrepareRoot(own))
        {
            return own;
        }

        throw new InvalidOperationException($"Neither {defaultRoot} nor {own} can be created or written to; the PostgreSQL test servers need one of them.");
    }

    private static bool TryPrepareRoot(string path)
    {
        try
        {
            if (!Directory.Exists(path))
            {
                Directory.CreateDirectory(path);
                if (!OperatingSystem.IsWindows())
                {
                    // Like /tmp: every user may create sets, only owners may remove them.
                    File.SetUnixFileMode(
                        path,
                        UnixFileMode.StickyBit
                        | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                        | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
                        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
                }
            }

            var probe = Path.Combine(path, $".probe-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid():N}");
            File.WriteAllText(probe, string.Empty);
            File.Delete(probe);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
