using System.Collections.Concurrent;
using System.Diagnostics;

namespace EfReplicaInterceptor.HistoryChecker;

/// <summary>
/// Collects a history from many concurrent sessions: one monotonic clock (<see cref="Stopwatch"/>) for every start and end, and
/// ids in the order operations were recorded. Thread-safe.
/// </summary>
public sealed class HistoryRecorder
{
    private readonly long _origin = Stopwatch.GetTimestamp();
    private readonly ConcurrentQueue<Operation> _operations = new();
    private long _lastId;

    /// <summary>The clock: time since the recorder was made.</summary>
    public TimeSpan Now => Stopwatch.GetElapsedTime(_origin);

    /// <summary>How many operations were recorded so far.</summary>
    public int Count => _operations.Count;

    /// <summary>Records an operation that ran from <paramref name="start"/> (taken from <see cref="Now"/> before it was invoked) until now.</summary>
    public Operation Record(string scope, OperationKind kind, IReadOnlyDictionary<string, long> values, TimeSpan start, OperationOutcome outcome = OperationOutcome.Ok, string? server = null)
    {
        var end = Now;
        var operation = new Operation(Interlocked.Increment(ref _lastId), scope, kind, values, start, end, outcome, server);
        _operations.Enqueue(operation);
        return operation;
    }

    /// <summary>The history so far, in id order.</summary>
    public IReadOnlyList<Operation> Snapshot() => [.. _operations.OrderBy(o => o.Id)];
}
