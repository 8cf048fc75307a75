namespace EfReplicaInterceptor.Failover;

/// <summary>The watch over a result its consumer reads after the operation returned (see <see cref="OperationWatch"/>).</summary>
internal sealed partial class OperationWatch
{
    /// <summary>
    /// When the call the watch is timing began (<see cref="TimeProvider.GetTimestamp"/>): the operation's start, then, for a
    /// result being read, the start of the consumer's call in flight, or 0 between two calls (the consumer's own time).
    /// </summary>
    private long _since;

    /// <summary>The operation returned a result its consumer is reading (see <see cref="BeginResult"/>).</summary>
    private bool _streaming;

    /// <summary>
    /// The operation returned a result (a reader) that stays on the connection until its consumer disposes it: the watch
    /// goes on until <see cref="Complete"/>, timing only the consumer's calls into the result, each from its start
    /// (<see cref="Enter"/>, <see cref="Exit"/>). A call is abandoned when the server has been silent for the deadline
    /// and the call itself ran that long (the rows before it count as answers), or when it outlives the hard stop; the
    /// consumer's own time between calls is not counted. Nothing per call but two writes: the watch's one timer looks.
    /// </summary>
    public void BeginResult()
    {
        lock (_gate)
        {
            _streaming = true;
            Volatile.Write(ref _since, 0);
        }
    }

    /// <summary>The consumer called into the result (a read, the next result, its close): timed from now.</summary>
    public void Enter() => Volatile.Write(ref _since, Math.Max(1, _timeProvider.GetTimestamp()));

    /// <summary>The consumer's call returned: its time until the next call is its own.</summary>
    public void Exit() => Volatile.Write(ref _since, 0);
}
