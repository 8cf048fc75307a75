using System.Globalization;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>Facts about processes read from <c>/proc</c>.</summary>
internal static class LinuxProcesses
{
    private static readonly Lazy<int?> EffectiveUserIdValue = new(ReadEffectiveUserId);

    /// <summary>The effective user id of this process, or null when <c>/proc</c> is not readable.</summary>
    public static int? EffectiveUserId => EffectiveUserIdValue.Value;

    /// <summary>True when this process runs as root, where PostgreSQL refuses to run.</summary>
    public static bool IsRoot => EffectiveUserId == 0 || Environment.UserName == "root";

    /// <summary>This process's id and start time, which together identify it even after the id is reused.</summary>
    public static string CurrentIdentity
    {
        get
        {
            var id = Environment.ProcessId;
            return string.Create(CultureInfo.InvariantCulture, $"{id} {StartTime(id) ?? "0"}");
        }
    }

    /// <summary>
    /// True when a process with this id exists, is not a zombie and, when <paramref name="startTime"/>
    /// is given, started at that time (so a reused id does not count).
    /// </summary>
    public static bool IsAlive(int processId, string? startTime = null)
    {
        var fields = StatFields(processId);
        if (fields is null)
        {
            return false;
        }

        // fields[0] is the state: Z (zombie) and X (dead) are gone for our purposes.
        if (fields[0] is "Z" or "X")
        {
            return false;
        }

        return startTime is null or "0" || fields.Length <= 19 || fields[19] == startTime;
    }

    /// <summary>Whether the identity written by <see cref="CurrentIdentity"/> belongs to a live process.</summary>
    public static bool IsAlive(string identity)
    {
        var parts = identity.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length > 0
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
            && IsAlive(id, parts.Length > 1 ? parts[1] : null);
    }

    /// <summary>
    /// True when the process runs the <c>postgres</c> program, so that a process id read from a
    /// stale <c>postmaster.pid</c> and since reused by another program is never killed.
    /// </summary>
    public static bool IsPostgres(int processId)
    {
        try
        {
            return File.ReadAllText($"/proc/{processId.ToString(CultureInfo.InvariantCulture)}/comm").Trim() == "postgres";
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

    /// <summary>The parent process id of <paramref name="processId"/>, or null when it is gone.</summary>
    public static int? ParentOf(int processId)
    {
        var fields = StatFields(processId);
        return fields is { Length: > 1 } && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var parent) ? parent : null;
    }

    /// <summary>
    /// The state letter of <c>/proc/&lt;id&gt;/stat</c> (<c>R</c> running, <c>S</c> sleeping, <c>T</c> stopped by a signal,
    /// <c>Z</c> zombie …), or null when the process is gone.
    /// </summary>
    public static string? State(int processId) => StatFields(processId) is { Length: > 0 } fields ? fields[0] : null;

    internal static string? StartTime(int processId)
    {
        var fields = StatFields(processId);
        return fields is { Length: > 19 } ? fields[19] : null;
    }

    /// <summary>The fields of <c>/proc/&lt;id&gt;/stat</c> after the command name: state first, start time at index 19.</summary>
    private static string[]? StatFields(int processId)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{processId.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        var end = stat.LastIndexOf(')');
        return end < 0 ? null : stat[(end + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    private static int? ReadEffectiveUserId()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    var parts = line[4..].Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length > 1 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
                    {
                        return uid;
                    }
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
}
