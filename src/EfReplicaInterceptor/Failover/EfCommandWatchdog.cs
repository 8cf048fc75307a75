using System.Data.Common;
using System.Runtime.CompilerServices;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// The deadline of the commands EF runs on its own connection (writes, transactions, pinned sessions: the primary), which
/// the library does not run itself: started when EF is about to run one, stopped when it has executed or failed. A hung
/// primary defeats Npgsql's command timeout (its cancel request is never answered, and is sent from the thread waiting for
/// the result); so once the command has run for the read deadline <em>and</em> the primary has answered nothing else for
/// as long (the rule of <see cref="OperationWatch"/>; at most three quarters of the command's own timeout, so that the
/// library acts before Npgsql's cancellation starts), EF's connection is broken: the command fails at once, and the
/// failure becomes the typed outcome (<see cref="ServerErrorKind.Unresponsive"/>: <c>Unknown</c> once sent). A slow
/// command on a primary that answers its probes is left to Npgsql's own timeout.
/// </summary>
internal sealed class EfCommandWatchdog(WatchedServer primary)
{
    private readonly ConditionalWeakTable<object, OperationWatch> _watches = [];

    /// <summary>EF is about to run <paramref name="command"/> on its own connection.</summary>
    public void Start(DbCommand command) => Start(command, command.Connection, command.CommandTimeout);

    /// <summary>EF is about to commit <paramref name="transaction"/> (its COMMIT is a command EF sends on its own connection).</summary>
    public void Start(DbTransaction transaction) => Start(transaction, transaction.Connection, (transaction.Connection as NpgsqlConnection)?.CommandTimeout ?? 0);

    /// <summary>EF's command or commit (<paramref name="key"/>) executed or failed: ends its watch. True when the watch had broken its connection.</summary>
    public bool Stop(object key)
    {
        if (!_watches.TryGetValue(key, out var watch))
        {
            return false;
        }

        _watches.Remove(key);
        return watch.Complete() != WatchVerdict.None;
    }

    private void Start(object key, DbConnection? connection, int commandTimeoutSeconds)
    {
        if (connection is not NpgsqlConnection npgsql)
        {
            return;
        }

        var deadlines = primary.Deadlines;
        var watch = new OperationWatch(
            primary.Subject, primary.Liveness, primary.SilenceFor(commandTimeoutSeconds), deadlines.Probe, TimeSpan.Zero, deadlines.TimeProvider, CancellationToken.None, endsWhenIdle: true);
        watch.Attach(npgsql);
        _watches.AddOrUpdate(key, watch);
    }

    /// <summary>The error EF is about to report for a command whose watch broke its connection: the server's silence, with EF's error inside.</summary>
    public static Exception Unresponsive(Exception efError)
        => new ServerDeadlineException("The primary answered neither the command nor anything else within the library's deadline, so the library closed the connection.", efError);
}
