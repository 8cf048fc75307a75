namespace EfReplicaInterceptor.Failover;

/// <summary>
/// Counts the library's operations in flight on one server (from the moment their <see cref="OperationWatch"/> exists until it
/// completes), so that a server that leaves the cluster's topology is let go only once they have ended. After
/// <see cref="CloseAsync"/> no operation may start: <see cref="TryEnter"/> fails and the operation fails over as if the
/// server were unreachable (it is no longer one of the cluster's servers). Thread-safe and allocation-free on the way in.
/// </summary>
internal sealed class ServerUsage
{
    private const long Closed = 1L << 62;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _state;

    /// <summary>Operations in flight now.</summary>
    public long InFlight => Interlocked.Read(ref _state) & (Closed - 1);

    /// <summary>True once <see cref="CloseAsync"/> was called: no operation may start.</summary>
    public bool IsClosed => (Interlocked.Read(ref _state) & Closed) != 0;

    /// <summary>Counts one operation in; false (nothing counted) once the server is closed.</summary>
    public bool TryEnter()
    {
        while (true)
        {
            var state = Interlocked.Read(ref _state);
            if ((state & Closed) != 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _state, state + 1, state) == state)
            {
                return true;
            }
        }
    }

    /// <summary>Counts one operation out (once per successful <see cref="TryEnter"/>).</summary>
    public void Exit()
    {
        if (Interlocked.Decrement(ref _state) == Closed)
        {
            _drained.TrySetResult();
        }
    }

    /// <summary>Refuses new operations; the task completes when the last one in flight has ended (at once when none is).</summary>
    public Task CloseAsync()
    {
        while (true)
        {
            var state = Interlocked.Read(ref _state);
            if ((state & Closed) != 0)
            {
                return _drained.Task;
            }

            if (Interlocked.CompareExchange(ref _state, state | Closed, state) == state)
            {
                if (state == 0)
                {
                    _drained.TrySetResult();
                }

                return _drained.Task;
            }
        }
    }
}
