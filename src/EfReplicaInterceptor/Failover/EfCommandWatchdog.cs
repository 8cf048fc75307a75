using System.Data.Common;
using System.Runtime.CompilerServices;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// The deadline of the commands EF runs on its own connection (writes, transactions, pinned sessions: the primary), which
/// the library does not run itself: started when EF is about to run one, stopped when it has executed or failed. A hung
/// primary defeats Npgsql's command timeout (its cancel request is never answered); so once the command has run for its
/// own <see cref="DbCommand.CommandTimeout"/> <em>and</em> the primary has answered nothing else for as long (see
/// <see cref="OperationWatch"/>), EF's connection is broken: the command fails at once, and the failure becomes the typed
/// outcome (<see cref="ServerErrorKind.Unresponsive"/>: <c>Unknown</c> once sent). A slow command on a primary that
/// answers its probes is left to Npgsql's own timeout, and a command with no timeout (0) is not watched.
/// </summary>
internal sealed class EfCommandWatchdog(WatchedServer primary)
{
    private readonly ConditionalWeakTable<DbCommand, OperationWatch> _watches = [];

    /// <summary>EF is about to run <paramref name="command"/> on its own connection.</summary>
    public void Start(DbCommand command)
    {
        if (command.Connection is not NpgsqlConnection connection || command.CommandTimeout <= 0)
        {
            return;
        }

        var deadlines = primary.Deadlines;
        var watch = new OperationWatch(
            primary.Subject, primary.Liveness, TimeSpan.FromSeconds(command.CommandTimeout), deadlines.Probe, TimeSpan.Zero, deadlines.TimeProvider, CancellationToken.None, endsWhenIdle: true);
        watch.Attach(connection);
        _watches.AddOrUpdate(command, watch);
    }

    /// <summary>EF's command executed or failed: ends its watch. True when the watch had broken its connection.</summary>
    public bool Stop(DbCommand command)
    {
        if (!_watches.TryGetValue(command, out var watch))
        {
            return false;
        }

        _watches.Remove(command);
        return watch.Complete() != WatchVerdict.None;
    }

    /// <summary>The error EF is about to report for a command whose watch broke its connection: the server's silence, with EF's error inside.</summary>
    public static Exception Unresponsive(Exception efError, TimeSpan commandTimeout)
        => new ServerDeadlineException(
            $"The primary did not answer within the command timeout ({commandTimeout.TotalSeconds:0.###} s) and answered nothing else meanwhile, so the library closed the connection.",
            efError);
}
