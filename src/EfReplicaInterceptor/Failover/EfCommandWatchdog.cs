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
            primary.Subject, primary.Liveness, primary.SilenceFor(commandTimeoutSeconds), deadlines.Probe, TimeSpan.Zero, deadlines.Timer, CancellationToken.None, endsWhenIdle: true);
        watch.Attach(npgsql);
        _watches.AddOrUpdate(key, watch);
    }

    /// <summary>
    /// Opens EF's own connection, whose open the library deferred until a command turned out to need the primary, within
    /// the read deadline (<c>Failover:ReadDeadline</c>) rather than Npgsql's connect timeout (15 s by default), which a hung
    /// primary (it accepts TCP and answers nothing) would otherwise hold EF for: Npgsql's open cannot be cancelled while it
    /// negotiates encryption, and EF's connection cannot be abandoned half-open (it could not even be closed). So a twin
    /// from the same pool (<see cref="ICloneable.Clone"/>) reaches the server first: an idle pooled connection is taken and
    /// given back at once, with no wait and no timer; a new one is awaited for the deadline, then abandoned (disposed
    /// whenever Npgsql's own open ends) and the open fails with a <see cref="ServerDeadlineException"/>, EF's connection
    /// untouched. Otherwise EF's open takes the connection the twin left idle in the pool.
    /// </summary>
    public async ValueTask OpenAsync(DbConnection connection, bool async, CancellationToken cancellationToken)
    {
        if (connection is NpgsqlConnection npgsql)
        {
            await ReachAsync(npgsql, async, cancellationToken).ConfigureAwait(false);
        }

        if (async)
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            connection.Open();
        }
    }

    private async ValueTask ReachAsync(NpgsqlConnection connection, bool async, CancellationToken cancellationToken)
    {
        var twin = (NpgsqlConnection)((ICloneable)connection).Clone();
        var opening = twin.OpenAsync(cancellationToken);
        if (!opening.IsCompleted)
        {
            // The cluster's deadline timer bounds the wait (a plain deadline: EF's open must reach the server within it);
            // the caller's token reaches Npgsql's open, and ends the wait after the grace if Npgsql cannot stop.
            var deadlines = primary.Deadlines;
            using var watch = new OperationWatch(primary.Subject, liveness: null, deadlines.Read, deadlines.Probe, TimeSpan.Zero, deadlines.Timer, cancellationToken);
            await watch.WaitAsync(opening, async).ConfigureAwait(false);
            if (!opening.IsCompleted)
            {
                _ = opening.ContinueWith(static (task, twin) =>
                {
                    _ = task.Exception;
                    ((NpgsqlConnection)twin!).Dispose();
                }, twin, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                cancellationToken.ThrowIfCancellationRequested();
                throw new ServerDeadlineException(
                    $"No connection to {primary.Subject} could be had within the library's deadline (Failover:ReadDeadline): the server did not accept one, or none of the pool's became free. EF's connection was not opened.");
            }
        }

        try
        {
            await opening.ConfigureAwait(false); // a failure is EF's open's own, seen first
        }
        finally
        {
            if (async)
            {
                await twin.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                twin.Dispose();
            }
        }
    }

    /// <summary>The error EF is about to report for a command whose watch broke its connection: the server's silence, with EF's error inside.</summary>
    public static Exception Unresponsive(Exception efError)
        => new ServerDeadlineException("The primary answered neither the command nor anything else within the library's deadline, so the library closed the connection.", efError);
}
