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
        // A stopped postmaster (state T) is alive: the listing also serves a server being frozen.
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

    /// <summary>
    /// Freezes the server of <paramref name="dataDirectory"/> and returns only once every one of its processes is stopped
    /// (state <c>T</c> in <c>/proc</c>): SIGSTOP is only a request, and a process in the middle of a system call stops when
    /// the call returns, so a caller that went on at once could still see the server answer. The postmaster is stopped
    /// first (it forks no new child after that), then its children, found again until no new one appears.
    /// </summary>
    /// <returns>The processes frozen, the postmaster first; empty when the server is not running.</returns>
    /// <exception cref="TimeoutException">A process did not stop within <paramref name="bound"/>.</exception>
    public static async Task<IReadOnlyList<int>> FreezeAsync(string dataDirectory, TimeSpan bound, CancellationToken ct)
    {
        var processes = ServerProcesses(dataDirectory);
        if (processes.Count == 0)
        {
            return processes;
        }

        var frozen = new List<int>();
        var seen = new HashSet<int>();
        // A child forked between the listing and the postmaster's stop is found by the next listing.
        while (processes.Where(seen.Add).ToList() is { Count: > 0 } added)
        {
            foreach (var id in added)
            {
                Send(id, SigStop);
                frozen.Add(id);
            }

            processes = ServerProcesses(dataDirectory);
        }

        await WaitForStatesAsync(frozen, stopped: true, bound, ct).ConfigureAwait(false);
        return frozen;
    }

    /// <summary>
    /// Continues <paramref name="processes"/> (children first, the postmaster last; a process that is gone is skipped) and
    /// returns only once none of them is stopped any more.
    /// </summary>
    /// <exception cref="TimeoutException">A process was still stopped after <paramref name="bound"/>.</exception>
    public static async Task ThawAsync(IReadOnlyList<int> processes, TimeSpan bound, CancellationToken ct)
    {
        for (var i = processes.Count - 1; i >= 0; i--)
        {
            Send(processes[i], SigCont);
        }

        await WaitForStatesAsync(processes, stopped: false, bound, ct).ConfigureAwait(false);
    }

    /// <summary>Polls <c>/proc</c> until every live process of <paramref name="processes"/> is (or is no longer) stopped.</summary>
    private static async Task WaitForStatesAsync(IReadOnlyList<int> processes, bool stopped, TimeSpan bound, CancellationToken ct)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var pending = processes.Where(id => LinuxProcesses.State(id) is { } state && state is not ("Z" or "X") && (state == "T") != stopped).ToList();
            if (pending.Count == 0)
            {
                return;
            }

            if (waited.Elapsed > bound)
            {
                throw new TimeoutException(string.Create(CultureInfo.InvariantCulture,
                    $"Processes {string.Join(", ", pending)} were still {(stopped ? "running" : "stopped")} {bound.TotalSeconds:0.#} s after {(stopped ? "SIGSTOP" : "SIGCONT")}."));
            }

            await Task.Delay(TimeSpan.FromMilliseconds(5), ct).ConfigureAwait(false);
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
