using System.Globalization;
using System.Runtime.InteropServices;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// Freezes and continues a local server's processes with SIGSTOP/SIGCONT: a hung host as the application sees it (the
/// kernel still accepts TCP connections on the server's port, but no process reads or answers). The processes are found
/// from the server's own data directory: the postmaster from <c>postmaster.pid</c>, then every process whose parent it is.
/// </summary>
internal static class ProcessSignals
{
    // Linux signal numbers (the same on x86-64 and arm64).
    private const int SigCont = 18;
    private const int SigStop = 19;

    /// <summary>The postmaster of <paramref name="dataDirectory"/> and its children, or empty when it is not running.</summary>
    public static IReadOnlyList<int> ServerProcesses(string dataDirectory)
    {
        if (HarnessDirectories.PostmasterProcessId(dataDirectory) is not { } postmaster
            || !LinuxProcesses.IsAlive(postmaster) || !LinuxProcesses.IsPostgres(postmaster))
        {
            return [];
        }

        var processes = new List<int> { postmaster };
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                && id != postmaster && LinuxProcesses.ParentOf(id) == postmaster)
            {
                processes.Add(id);
            }
        }

        return processes;
    }

    /// <summary>Sends SIGSTOP to every process (the postmaster first, so it starts no new child meanwhile).</summary>
    public static void Stop(IReadOnlyList<int> processes)
    {
        foreach (var id in processes)
        {
            Send(id, SigStop);
        }
    }

    /// <summary>Sends SIGCONT to every process (children first, the postmaster last); a process that is gone is skipped.</summary>
    public static void Continue(IReadOnlyList<int> processes)
    {
        for (var i = processes.Count - 1; i >= 0; i--)
        {
            Send(processes[i], SigCont);
        }
    }

    private static void Send(int processId, int signal)
    {
        if (Kill(processId, signal) != 0)
        {
            var error = Marshal.GetLastPInvokeError();
            if (error != 3) // ESRCH: the process is gone, nothing to freeze or continue
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"kill({processId}, {signal}) failed with errno {error}."));
            }
        }
    }

    // DllImport rather than LibraryImport: the generated marshalling of the latter needs unsafe code, for two ints.
#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Kill(int processId, int signal);
#pragma warning restore SYSLIB1054
}
