using System.Diagnostics;
using System.Globalization;

namespace EfReplicaInterceptor.Testing;

/// <summary>Finds the folder that holds the PostgreSQL server programs the harness runs.</summary>
public static class PostgresBinaries
{
    /// <summary>The environment variable that names the folder explicitly: <c>EFREPLICA_PG_BIN</c>.</summary>
    public const string EnvironmentVariable = "EFREPLICA_PG_BIN";

    /// <summary>The programs the harness needs, all from one folder.</summary>
    internal static readonly string[] RequiredPrograms = ["initdb", "pg_ctl", "postgres", "pg_basebackup"];

    private const string DebianRoot = "/usr/lib/postgresql";

    /// <summary>
    /// Returns the folder that contains <c>initdb</c>, <c>pg_ctl</c>, <c>postgres</c> and
    /// <c>pg_basebackup</c>. Looks, in order, at the folder named by <c>EFREPLICA_PG_BIN</c>, at
    /// <c>pg_config --bindir</c>, at the highest <c>/usr/lib/postgresql/*/bin</c> and at the
    /// folders on <c>PATH</c> (following symbolic links).
    /// </summary>
    /// <returns>The absolute path of the folder.</returns>
    /// <exception cref="PostgresBinariesNotFoundException">
    /// None of the places holds all four programs, or <c>EFREPLICA_PG_BIN</c> names a folder that
    /// does not. The message says how to install them.
    /// </exception>
    public static string Locate() => Locate(Environment.GetEnvironmentVariable);

    /// <summary><see cref="Locate()"/> reading environment variables through <paramref name="environment"/> (tests).</summary>
    internal static string Locate(Func<string, string?> environment)
    {
        var looked = new List<string>();

        var fromEnvironment = environment(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            var folder = Path.GetFullPath(fromEnvironment.Trim());
            if (HasAllPrograms(folder))
            {
                return folder;
            }

            // An explicit setting that is wrong must not silently fall back to another installation.
            throw new PostgresBinariesNotFoundException(
                $"{EnvironmentVariable} is set to '{folder}', but that folder does not contain all of "
                + $"{string.Join(", ", RequiredPrograms)} (missing: {string.Join(", ", Missing(folder))}). "
                + $"Point {EnvironmentVariable} at the server's bin folder (for example /usr/lib/postgresql/15/bin) or unset it.");
        }

        looked.Add($"{EnvironmentVariable} (not set)");

        var fromPgConfig = PgConfigBinDir();
        if (fromPgConfig is not null)
        {
            if (HasAllPrograms(fromPgConfig))
            {
                return fromPgConfig;
            }

            looked.Add($"pg_config --bindir ({fromPgConfig}: missing {string.Join(", ", Missing(fromPgConfig))})");
        }
        else
        {
            looked.Add("pg_config --bindir (pg_config not found)");
        }

        foreach (var folder in DebianBinFolders())
        {
            if (HasAllPrograms(folder))
            {
                return folder;
            }

            looked.Add($"{folder} (missing {string.Join(", ", Missing(folder))})");
        }

        looked.Add($"{DebianRoot}/*/bin");

        var fromPath = FromPath();
        if (fromPath is not null)
        {
            return fromPath;
        }

        looked.Add("PATH");
        throw new PostgresBinariesNotFoundException(NotFoundMessage(looked));
    }

    internal static string NotFoundMessage(IReadOnlyCollection<string> looked)
    {
        var where = looked.Count == 0 ? string.Empty : $" Looked at: {string.Join("; ", looked)}.";
        return "The PostgreSQL server programs (initdb, pg_ctl, postgres, pg_basebackup) were not found; "
            + "the integration tests, the demo and the benchmarks start real PostgreSQL servers with them."
            + where
            + " Install them with `sudo apt-get install -y postgresql` (Debian/Ubuntu), or set "
            + $"{EnvironmentVariable} to the folder that contains them. `build/test.sh` and `build/demo.sh` "
            + "install them by themselves when they are missing (through build/ensure-postgres.sh).";
    }

    private static bool HasAllPrograms(string folder) => Missing(folder).Count == 0;

    private static List<string> Missing(string folder) =>
        [.. RequiredPrograms.Where(program => !File.Exists(Path.Combine(folder, program)))];

    private static string? PgConfigBinDir()
    {
        var pgConfig = FindOnPath("pg_config");
        if (pgConfig is null)
        {
            return null;
        }

        try
        {
            var startInfo = new ProcessStartInfo(pgConfig, "--bindir")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(startInfo);
            if (process is null)
            {
                return null;
            }

            var output = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(10_000))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }

            var folder = output.Trim();
            return process.ExitCode == 0 && folder.Length > 0 ? folder : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static IEnumerable<string> DebianBinFolders()
    {
        if (!Directory.Exists(DebianRoot))
        {
            return [];
        }

        return Directory.EnumerateDirectories(DebianRoot)
            .Select(folder => (Folder: folder, Version: ParseVersion(Path.GetFileName(folder))))
            .Where(entry => entry.Version is not null)
            .OrderByDescending(entry => entry.Version, VersionComparer.Instance)
            .Select(entry => Path.Combine(entry.Folder, "bin"));
    }

    private static int[]? ParseVersion(string name)
    {
        var parts = name.Split('.');
        var numbers = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out numbers[i]))
            {
                return null;
            }
        }

        return numbers;
    }

    private static string? FromPath()
    {
        var postgres = FindOnPath("postgres");
        if (postgres is null)
        {
            return null;
        }

        // Distributions often put symbolic links to some (not all) programs on PATH; the real folder has all of them.
        var target = File.ResolveLinkTarget(postgres, returnFinalTarget: true)?.FullName;
        if (target is not null && Path.GetDirectoryName(target) is { } realFolder && HasAllPrograms(realFolder))
        {
            return realFolder;
        }

        var pathFolder = Path.GetDirectoryName(postgres);
        return pathFolder is not null && HasAllPrograms(pathFolder) ? pathFolder : null;
    }

    internal static string? FindOnPath(string program)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var folder in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(folder, program);
            if (File.Exists(candidate))
            {
                return Path.GetFullPath(candidate);
            }
        }

        return null;
    }

    private sealed class VersionComparer : IComparer<int[]?>
    {
        public static readonly VersionComparer Instance = new();

        public int Compare(int[]? x, int[]? y)
        {
            if (x is null || y is null)
            {
                return (x is null ? 0 : 1) - (y is null ? 0 : 1);
            }

            for (var i = 0; i < Math.Min(x.Length, y.Length); i++)
            {
                var byPart = x[i].CompareTo(y[i]);
                if (byPart != 0)
                {
                    return byPart;
                }
            }

            return x.Length.CompareTo(y.Length);
        }
    }
}
