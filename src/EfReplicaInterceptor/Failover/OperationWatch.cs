using System.Globalization;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// The library's own deadline for one operation against one server (a read, a probe, a position capture, a command EF runs
/// on its own connection), enforced without the server's cooperation: when it passes, the operation's connection is broken
/// (<see cref="ConnectionBreaker"/>), so the blocked call returns with a broken connection that never goes back to its pool.
/// </summary>
/// <remarks>
/// <para>
/// The deadline separates "the server cannot answer" from "the query is slow", as the AWS Advanced JDBC Wrapper's host
/// monitoring does: with a <see cref="ServerLiveness"/>, the operation is abandoned once the server has answered nothing
/// (the monitor's independent probes, other commands, this operation) for the deadline. A slow query on a healthy server
/// keeps running (its probes answer); a hung server stops answering probes too, and every operation on it is abandoned
/// when the server's silence reaches the deadline, however recently the operation started, but never before the
/// operation itself has had the grace (so a monitor that fell behind cannot fail operations at once). The longest an
/// operation waits on a hung server is therefore the deadline. Without a liveness (the probes themselves) it is a plain
/// deadline from the start.
/// </para>
/// <para>
/// The caller's token is honoured without handing it to Npgsql (whose cancellation sends a cancel request that a hung
/// server never answers, inside the canceller's own call): on cancellation the command is cancelled from the thread pool
/// (PostgreSQL's own cancel, which a live server obeys at once), and if the operation has not ended after the grace its
/// connection is broken. A hard stop (a command timeout plus the grace) bounds the operation whatever the server answers.
/// </para>
/// </remarks>
internal sealed partial class OperationWatch : IDisposable
{
    private readonly TimeProvider _timeProvider;
    private readonly ServerLiveness? _liveness;
    private readonly string _subject;
    private readonly TimeSpan _deadline;
    private readonly long _deadlineTicks;
    private readonly long _graceTicks;
    private readonly long _start;
    private readonly long _floorTicks; // the least time an operation itself gets, however long its server has been silent
    private readonly long _hardStopTicks; // after the start of the watched call (0: none)
    private readonly CancellationToken _callerToken;
    private readonly Lock _gate = new();
    private readonly DeadlineTimer _timer;
    private CancellationTokenRegistration _registration;
    private NpgsqlConnection? _connection;
    private NpgsqlCommand? _command;
    private TaskCompletionSource? _fired;
    private long _cancelledAt;
    private bool _done;
    private readonly bool _endsWhenIdle;
    private readonly ServerUsage? _usage;
    private readonly bool _refused;

    /// <param name="subject">What the server is, for messages: <c>replica 'standby1'</c>, <c>the primary</c>.</param>
    /// <param name="liveness">The server's signs of life; null for a plain deadline from the start.</param>
    /// <param name="deadline">How long the server may stay silent.</param>
    /// <param name="grace">How long a cancelled or timed-out operation may take to end by itself before it is broken.</param>
    /// <param name="commandTimeout">The command's own timeout (zero: none): the operation is broken at most the grace after it.</param>
    /// <param name="timer">The cluster's one deadline timer (and through it, its clock).</param>
    /// <param name="cancellationToken">The caller's token.</param>
    /// <param name="endsWhenIdle">The watch ends by itself at a check that finds its connection neither executing nor fetching
    /// (for commands whose end it may not be told of, such as one EF cancelled).</param>
    /// <param name="usage">The server's count of operations in flight, counted in until the watch completes (null: not
    /// counted). When the server has left the topology, <see cref="OpenAsync"/> refuses to open.</param>
    public OperationWatch(string subject, ServerLiveness? liveness, TimeSpan deadline, TimeSpan grace, TimeSpan commandTimeout, DeadlineTimer timer, CancellationToken cancellationToken, bool endsWhenIdle = false, ServerUsage? usage = null)
    {
        if (usage is not null)
        {
            _refused = !usage.TryEnter();
            _usage = _refused ? null : usage;
        }

        _endsWhenIdle = endsWhenIdle;
        _timer = timer;
        _timeProvider = timer.TimeProvider;
        var timeProvider = _timeProvider;
        _liveness = liveness;
        _subject = subject;
        _deadline = deadline;
        _deadlineTicks = ToTicks(deadline);
        _graceTicks = ToTicks(grace);
        _start = timeProvider.GetTimestamp();
        _floorTicks = Math.Min(_graceTicks, _deadlineTicks);
        _hardStopTicks = commandTimeout > TimeSpan.Zero ? ToTicks(commandTimeout) + _graceTicks : 0;
        _since = _start;
        _callerToken = cancellationToken;
        timer.Schedule(this, SilentUntil(_start));
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.UnsafeRegister(static state => ((OperationWatch)state!).OnCallerCancelled(), this);
        }
    }

    /// <summary>Why the watch gave up, or <see cref="WatchVerdict.None"/>.</summary>
    public WatchVerdict Verdict { get; private set; }

    /// <summary>True when an operation was left running (its connection is disposed when it ends): the caller must not dispose it.</summary>
    public bool Abandoned { get; private set; }

    /// <summary>The connection to break when the deadline passes (from the moment it is open).</summary>
    public void Attach(NpgsqlConnection connection, NpgsqlCommand? command = null)
    {
        lock (_gate)
        {
            _connection = connection;
            _command = command;
            if (Verdict != WatchVerdict.None)
            {
                ConnectionBreaker.TryBreak(connection);
            }
        }
    }

    /// <summary>
    /// Opens a connection from <paramref name="dataSource"/>, giving up when the watch does: an idle pooled connection is
    /// taken at once; a new one is awaited (with <paramref name="async"/> false, waited for: the only place a synchronous
    /// caller waits on a task) and abandoned at the deadline, to be disposed whenever Npgsql's own connect ends.
    /// </summary>
    public async ValueTask<NpgsqlConnection> OpenAsync(NpgsqlDataSource dataSource, bool async, CancellationToken cancellationToken)
    {
        if (_refused)
        {
            // Not one of the cluster's servers any more (removed from the topology): an opening failure, so a read goes elsewhere.
            throw new NpgsqlException($"{_subject} is no longer one of the cluster's servers; the operation was not started.");
        }

        var pending = dataSource.OpenConnectionAsync(cancellationToken);
        if (pending.IsCompleted)
        {
            return await pending.ConfigureAwait(false);
        }

        var opening = pending.AsTask();
        await WaitAsync(opening, async).ConfigureAwait(false);
        if (opening.IsCompleted)
        {
            return await opening.ConfigureAwait(false);
        }

        _ = opening.ContinueWith(static task => task.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        _ = opening.ContinueWith(static task => _ = task.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        throw Failure(inner: null);
    }

    /// <summary>
    /// Waits for <paramref name="operation"/>. When the connection can be broken, that ends it at the deadline; when it
    /// cannot (<see cref="ConnectionBreaker.IsSupported"/> false), an async caller stops waiting at the deadline and the
    /// connection is disposed, its pool cleared, whenever the operation ends. When the connection can be broken the operation
    /// itself is handed back (no async method of its own between the caller and Npgsql: one state machine fewer per read).
    /// </summary>
    public ValueTask<T> RunAsync<T>(Task<T> operation, NpgsqlConnection connection)
        => ConnectionBreaker.IsSupported || operation.IsCompleted ? new ValueTask<T>(operation) : RunUnbreakableAsync(operation, connection);

    private async ValueTask<T> RunUnbreakableAsync<T>(Task<T> operation, NpgsqlConnection connection)
    {
        await WaitAsync(operation, async: true).ConfigureAwait(false);
        if (!operation.IsCompleted)
        {
            _ = operation.ContinueWith(static (task, state) =>
            {
                _ = task.Exception;
                NpgsqlConnection.ClearPool((NpgsqlConnection)state!);
                ((NpgsqlConnection)state!).Dispose();
            }, connection, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            Abandoned = true;
            throw Failure(inner: null);
        }

        return await operation.ConfigureAwait(false);
    }

    /// <summary>Ends the watch; returns why it gave up before (then the operation's connection is broken).</summary>
    public WatchVerdict Complete()
    {
        lock (_gate)
        {
            if (_done)
            {
                return Verdict;
            }

            _done = true;
            _connection = null;
            _command = null;
        }

        _timer.Cancel(this);
        _registration.Dispose();
        _usage?.Exit();
        return Verdict;
    }

    /// <summary>The exception for a watch that gave up: the caller's cancellation, or the server's silence.</summary>
    public Exception Failure(Exception? inner) => Verdict == WatchVerdict.Cancelled
        ? new OperationCanceledException("The operation was cancelled; the server did not end it in time, so its connection was closed.", inner, _callerToken)
        : new ServerDeadlineException(
            string.Create(CultureInfo.InvariantCulture, $"{_subject} did not answer within the library's deadline ({_deadline.TotalSeconds:0.###} s), so the operation was abandoned and its connection closed."),
            inner);

    public void Dispose() => Complete();

    private void Check()
    {
        lock (_gate)
        {
            if (_done || Verdict != WatchVerdict.None)
            {
                return;
            }

            if (_endsWhenIdle && _connection is { } connection && (connection.FullState & (System.Data.ConnectionState.Executing | System.Data.ConnectionState.Fetching)) == 0)
            {
                _done = true;
                _connection = null;
                _timer.Cancel(this);
                return;
            }

            var now = _timeProvider.GetTimestamp();
            if (_cancelledAt != 0 && now - _cancelledAt >= _graceTicks)
            {
                Fire(WatchVerdict.Cancelled);
                return;
            }

            var since = Volatile.Read(ref _since);
            if (since == 0)
            {
                // A result between two calls of its consumer: the consumer's own time is not watched; looked at again later.
                _timer.Schedule(this, now + _deadlineTicks);
                return;
            }

            var hardStop = _hardStopTicks == 0 ? 0 : since + _hardStopTicks;
            if (hardStop != 0 && now >= hardStop)
            {
                Fire(WatchVerdict.Unresponsive);
                return;
            }

            var next = SilentUntil(since);
            if (now >= next)
            {
                Fire(WatchVerdict.Unresponsive);
                return;
            }

            if (hardStop != 0)
            {
                next = Math.Min(next, hardStop);
            }

            if (_cancelledAt != 0)
            {
                next = Math.Min(next, _cancelledAt + _graceTicks);
            }

            _timer.Schedule(this, next);
        }
    }

    /// <summary>
    /// When the server's silence reaches the deadline, for a call that began at <paramref name="since"/>: the deadline after
    /// its last sign of life (the start counting as one for a plain deadline, and, for a result being read, the start of the
    /// consumer's call: the rows before it were answers), but not before the call has had the grace.
    /// </summary>
    private long SilentUntil(long since)
        => _liveness is null
            ? since + _deadlineTicks
            : Math.Max((_streaming ? Math.Max(_liveness.LastAnswer, since) : _liveness.LastAnswer) + _deadlineTicks, since + _floorTicks);

    private void OnCallerCancelled()
    {
        lock (_gate)
        {
            if (_done || Verdict != WatchVerdict.None)
            {
                return;
            }

            _cancelledAt = _timeProvider.GetTimestamp();
            if (_command is { } command)
            {
                // PostgreSQL's cancel request, on the thread pool: it returns at once from a live server and would hang the
                // canceller's own thread on a hung one.
                ThreadPool.UnsafeQueueUserWorkItem(static command => Cancel(command), command, preferLocal: false);
            }

            _timer.Schedule(this, _cancelledAt + _graceTicks);
        }
    }

    private static void Cancel(NpgsqlCommand command)
    {
        try
        {
            command.Cancel();
        }
        catch (Exception)
        {
            // The command ended or its connection broke meanwhile; the watch breaks it anyway after the grace.
        }
    }

    private void Fire(WatchVerdict verdict)
    {
        Verdict = verdict;
        if (_connection is { } connection)
        {
            ConnectionBreaker.TryBreak(connection);
        }

        _fired?.TrySetResult();
    }

    /// <summary>
    /// Waits until <paramref name="operation"/> ends or the watch gives up, whichever comes first (with <paramref name="async"/>
    /// false, blocking: the one way to bound a synchronous wait on something that cannot be cancelled).
    /// </summary>
    public async ValueTask WaitAsync(Task operation, bool async)
    {
        Task fired;
        lock (_gate)
        {
            _fired ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (Verdict != WatchVerdict.None)
            {
                _fired.TrySetResult();
            }

            fired = _fired.Task;
        }

        if (async)
        {
            await Task.WhenAny(operation, fired).ConfigureAwait(false);
        }
        else
        {
            Task.WaitAny(operation, fired);
        }
    }

    private long ToTicks(TimeSpan duration) => (long)(duration.TotalSeconds * _timeProvider.TimestampFrequency);
}
