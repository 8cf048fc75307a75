using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// A long-running program the harness started (etcd, Patroni), as the unprivileged server user when this process is root
/// (through <c>setpriv</c>, which executes the program in its own process: the process id is the program's), with its
/// standard output and error appended to a log file. Each start is recorded in the set folder's <c>daemons</c> file (process
/// id and start time) so that the processes of a crashed test run are killed by the next start (<see cref="KillRecorded"/>).
/// </summary>
internal sealed class DaemonProcess : IDisposable
{
    /// <summary>The file in a set folder that lists the daemons started there: "pid start-time name" per line.</summary>
    public const string RecordFile = "daemons";

    private const int SigKill = 9;
    private const int SigTerm = 15;
    private const int SigHup = 1;

    private static readonly Lazy<string> SetPrivProgram = new(() =>
        new[] { "/usr/bin/setpriv", "/bin/setpriv" }.FirstOrDefault(File.Exists)
        ?? PostgresBinaries.FindOnPath("setpriv")
        ?? "setpriv");

    private static readonly Lock RecordGate = new();

    private readonly Process _process;

    private DaemonProcess(string name, Process process, string startTime, string logFile)
    {
        Name = name;
        _process = process;
        ProcessId = process.Id;
        StartTime = startTime;
        LogFile = logFile;
    }

    public string Name { get; }

    public int ProcessId { get; }

    public string StartTime { get; }

    public string LogFile { get; }

    /// <summary>Whether the process still runs (by id and start time, so a reused id does not count).</summary>
    public bool IsAlive => LinuxProcesses.IsAlive(ProcessId, StartTime);

    /// <summary>
    /// Starts <paramref name="program"/> with <paramref name="arguments"/> in <paramref name="setDirectory"/>, its output appended to
    /// <paramref name="logFile"/>, and records it in the set folder's <see cref="RecordFile"/>.
    /// </summary>
    public static DaemonProcess Start(string name, string program, IReadOnlyList<string> arguments, string? runAsUser, string setDirectory, string logFile)
    {
        var startInfo = new ProcessStartInfo { UseShellExecute = false, WorkingDirectory = setDirectory };
        if (runAsUser is not null)
        {
            startInfo.FileName = SetPrivProgram.Value;
            startInfo.ArgumentList.Add($"--reuid={runAsUser}");
            startInfo.ArgumentList.Add($"--regid={runAsUser}");
            startInfo.ArgumentList.Add("--init-groups");
            startInfo.ArgumentList.Add("--");
            startInfo.ArgumentList.Add("/bin/sh");
        }
        else
        {
            startInfo.FileName = "/bin/sh";
        }

        // The shell only redirects and then replaces itself with the program: one process, whose id is the program's.
        startInfo.ArgumentList.Add("-c");
        startInfo.ArgumentList.Add("exec \"$@\" </dev/null >>\"$EFREPLICA_DAEMON_LOG\" 2>&1");
        startInfo.ArgumentList.Add(name);
        startInfo.ArgumentList.Add(program);
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var variable in startInfo.Environment.Keys.Where(key => key.StartsWith("PG", StringComparison.Ordinal)).ToList())
        {
            startInfo.Environment.Remove(variable);
        }

        startInfo.Environment["EFREPLICA_DAEMON_LOG"] = logFile;
        startInfo.Environment["LC_ALL"] = "C.UTF-8";
        startInfo.Environment["LANG"] = "C.UTF-8";
        startInfo.Environment["HOME"] = setDirectory;
        startInfo.Environment["PYTHONUNBUFFERED"] = "1";

        var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start {name} (`{program}`): {exception.Message}", exception);
        }

        var startTime = LinuxProcesses.StartTime(process.Id) ?? "0";
        lock (RecordGate)
        {
            File.AppendAllText(
                Path.Combine(setDirectory, RecordFile),
                string.Create(CultureInfo.InvariantCulture, $"{process.Id} {startTime} {name}{Environment.NewLine}"));
        }

        return new DaemonProcess(name, process, startTime, logFile);
    }

    /// <summary>SIGKILL, as when the machine under the process dies. Nothing happens when it has already exited.</summary>
    public void Kill() => Signal(SigKill);

    /// <summary>SIGTERM: Patroni stops its PostgreSQL (fast) and releases the leader key, then exits.</summary>
    public void Terminate() => Signal(SigTerm);

    /// <summary>SIGHUP: Patroni reloads its configuration file.</summary>
    public void Reload() => Signal(SigHup);

    /// <summary>Waits until the process has exited; false when it still runs after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return !IsAlive;
        }
    }

    public void Dispose() => _process.Dispose();

    /// <summary>
    /// Kills (SIGKILL) every daemon recorded in <paramref name="setDirectory"/>'s <see cref="RecordFile"/> that still runs
    /// (same id and start time), for the folders of crashed test runs. Returns how many were killed.
    /// </summary>
    public static int KillRecorded(string setDirectory)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(Path.Combine(setDirectory, RecordFile));
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }

        var killed = 0;
        foreach (var line in lines)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2
                && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                && parts[1] != "0"
                && LinuxProcesses.IsAlive(id, parts[1])
                && SendSignal(id, SigKill) == 0)
            {
                killed++;
            }
        }

        return killed;
    }

    /// <summary>Kills the process with SIGKILL when it is still the one with that start time (a postmaster, say).</summary>
    public static void KillProcess(int processId, string? startTime)
    {
        if (LinuxProcesses.IsAlive(processId, startTime))
        {
            SendSignal(processId, SigKill);
        }
    }

    /// <summary>
    /// A process's memory in bytes: its proportional set size (<c>Pss</c> of <c>smaps_rollup</c>), else its resident set size
    /// (<c>VmRSS</c>); 0 when it is gone.
    /// </summary>
    public static long MemoryBytes(int processId)
    {
        var id = processId.ToString(CultureInfo.InvariantCulture);
        return Kilobytes($"/proc/{id}/smaps_rollup", "Pss:") ?? Kilobytes($"/proc/{id}/status", "VmRSS:") ?? 0;
    }

    private static long? Kilobytes(string file, string field)
    {
        try
        {
            foreach (var line in File.ReadLines(file))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    var parts = line[field.Length..].Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    return parts.Length > 0 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kilobytes) ? kilobytes * 1024 : null;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>The ids of every process descending from one of <paramref name="roots"/>, the roots included when alive.</summary>
    public static IReadOnlySet<int> WithDescendants(IEnumerable<int> roots)
    {
        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                && LinuxProcesses.ParentOf(id) is { } parent)
            {
                parents[id] = parent;
            }
        }

        var result = new HashSet<int>(roots.Where(root => parents.ContainsKey(root)));
        bool added;
        do
        {
            added = false;
            foreach (var (id, parent) in parents)
            {
                if (!result.Contains(id) && result.Contains(parent))
                {
                    result.Add(id);
                    added = true;
                }
            }
        }
        while (added);

        return result;
    }

    private void Signal(int signal)
    {
        if (IsAlive)
        {
            SendSignal(ProcessId, signal);
        }
    }

    private static int SendSignal(int processId, int signal)
    {
        if (KillNative(processId, signal) == 0)
        {
            return 0;
        }

        var error = Marshal.GetLastPInvokeError();
        return error == 3 ? 0 : error; // ESRCH: already gone
    }

    // DllImport rather than LibraryImport: the generated marshalling of the latter needs unsafe code, for two ints.
#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int KillNative(int processId, int signal);
#pragma warning restore SYSLIB1054
}
