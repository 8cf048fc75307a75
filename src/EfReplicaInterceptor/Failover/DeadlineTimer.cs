namespace EfReplicaInterceptor.Failover;

/// <summary>
/// The one timer behind every <see cref="OperationWatch"/> of a cluster: one <see cref="ITimer"/> from the cluster's
/// <see cref="TimeProvider"/>, always set for the earliest look any watch asked for. The watches waiting are a list sorted by
/// when each is due, linked through the watches themselves, so scheduling, rescheduling and cancelling a watch allocate
/// nothing and take a few pointer writes under one short lock: a new watch is almost always due last (the watches of a
/// cluster share a few deadlines), so it is linked from the tail; a watch that completes is unlinked where it is. The
/// timer is not moved when the earliest watch completes: it fires for nothing, once, and is set for the next.
/// </summary>
/// <remarks>
/// Before it, each operation created a timer of its own (a <c>TimerQueueTimer</c> and its wrapper per read, each capturing
/// the caller's execution context). The callback runs the due watches' checks outside the lock (a check may schedule its
/// watch again), so a watch's own lock is never taken under this one.
/// </remarks>
internal sealed class DeadlineTimer : IDisposable
{
    private readonly Lock _gate = new();
    private ITimer? _timer;
    private OperationWatch? _head;
    private OperationWatch? _tail;
    private long _armedFor = long.MaxValue; // when the timer fires next (a timestamp); MaxValue: not set
    private bool _disposed;

    public DeadlineTimer(TimeProvider timeProvider) => TimeProvider = timeProvider;

    /// <summary>The cluster's clock.</summary>
    public TimeProvider TimeProvider { get; }

    /// <summary>Watches waiting (tests and diagnostics).</summary>
    public int Pending
    {
        get
        {
            lock (_gate)
            {
                var count = 0;
                for (var watch = _head; watch is not null; watch = watch.TimerNext)
                {
                    count++;
                }

                return count;
            }
        }
    }

    /// <summary>
    /// <paramref name="watch"/> is to be looked at (<see cref="OperationWatch.OnDue"/>) at <paramref name="due"/> (a
    /// <see cref="TimeProvider.GetTimestamp"/> value), instead of whenever it was due before.
    /// </summary>
    public void Schedule(OperationWatch watch, long due)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            if (watch.TimerLinked)
            {
                Unlink(watch);
            }

            watch.TimerDue = due;
            var after = _tail;
            while (after is not null && after.TimerDue > due)
            {
                after = after.TimerPrevious;
            }

            watch.TimerPrevious = after;
            watch.TimerNext = after is null ? _head : after.TimerNext;
            if (watch.TimerNext is { } next)
            {
                next.TimerPrevious = watch;
            }
            else
            {
                _tail = watch;
            }

            if (after is null)
            {
                _head = watch;
            }
            else
            {
                after.TimerNext = watch;
            }

            watch.TimerLinked = true;
            if (due < _armedFor)
            {
                Arm(due);
            }
        }
    }

    /// <summary><paramref name="watch"/> needs no more looks (it completed).</summary>
    public void Cancel(OperationWatch watch)
    {
        lock (_gate)
        {
            if (watch.TimerLinked)
            {
                Unlink(watch);
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            while (_head is { } watch)
            {
                Unlink(watch);
            }

            _timer?.Dispose();
            _timer = null;
        }
    }

    private void Fire()
    {
        List<OperationWatch>? due = null;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            var now = TimeProvider.GetTimestamp();
            while (_head is { } watch && watch.TimerDue <= now)
            {
                Unlink(watch);
                (due ??= []).Add(watch);
            }

            _armedFor = long.MaxValue;
            if (_head is { } next)
            {
                Arm(next.TimerDue);
            }
        }

        if (due is null)
        {
            return;
        }

        foreach (var watch in due)
        {
            watch.OnDue();
        }
    }

    private void Arm(long due)
    {
        _armedFor = due;
        if (_timer is null)
        {
            // One timer for the cluster's life: the execution context of whichever operation came first must not flow into
            // every later callback.
            var restore = !ExecutionContext.IsFlowSuppressed();
            if (restore)
            {
                ExecutionContext.SuppressFlow();
            }

            try
            {
                _timer = TimeProvider.CreateTimer(static state => ((DeadlineTimer)state!).Fire(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
            finally
            {
                if (restore)
                {
                    ExecutionContext.RestoreFlow();
                }
            }
        }

        // Never zero: a fake clock runs a callback due now inside Change, which would run the watches' checks under this lock.
        var ticks = Math.Max(1, due - TimeProvider.GetTimestamp());
        var frequency = TimeProvider.TimestampFrequency;
        var delay = frequency == TimeSpan.TicksPerSecond ? TimeSpan.FromTicks(ticks) : TimeSpan.FromSeconds((double)ticks / frequency);
        _timer.Change(delay > TimeSpan.Zero ? delay : TimeSpan.FromTicks(1), Timeout.InfiniteTimeSpan);
    }

    private void Unlink(OperationWatch watch)
    {
        var previous = watch.TimerPrevious;
        var next = watch.TimerNext;
        if (previous is null)
        {
            _head = next;
        }
        else
        {
            previous.TimerNext = next;
        }

        if (next is null)
        {
            _tail = previous;
        }
        else
        {
            next.TimerPrevious = previous;
        }

        watch.TimerPrevious = null;
        watch.TimerNext = null;
        watch.TimerLinked = false;
    }
}
