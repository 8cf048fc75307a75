namespace EfReplicaInterceptor.TestSupport.History;

/// <summary>How the workload's writes commit.</summary>
public enum WriteCommit
{
    /// <summary>Whatever the server says (<c>synchronous_commit</c> server-wide); a quarter of the writes in an explicit transaction.</summary>
    ServerSetting,

    /// <summary>Every write in an explicit transaction that starts with <c>SET LOCAL synchronous_commit = off</c>.</summary>
    SetLocalOff,
}

/// <summary>The shape of one history workload run (<see cref="HistoryWorkload"/>).</summary>
public sealed record WorkloadSettings
{
    /// <summary>Sessions whose scope is one DbContext lease (a pooled context, 4 to 16 operations), then the next lease.</summary>
    public int LeaseSessions { get; init; } = 2;

    /// <summary>Sessions whose scope is an ambient <c>EfReplicaScope.BeginConsistency()</c> (a new context per operation, 4 to 16 operations).</summary>
    public int AmbientSessions { get; init; } = 2;

    /// <summary>Users: one scope for the whole run, carried from request to request (a new scope and context each) by its token.</summary>
    public int Users { get; init; } = 2;

    /// <summary>Shared counters every read reads and writes increment.</summary>
    public int Counters { get; init; } = 3;

    /// <summary>How often a background writer increments a counter; <see cref="TimeSpan.Zero"/> for none.</summary>
    public TimeSpan CounterWriteInterval { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Share of a session's operations that write (its own register, and usually a counter). The operation after a write is always a read.</summary>
    public double WriteShare { get; init; } = 0.3;

    /// <summary>How writes commit.</summary>
    public WriteCommit Commit { get; init; } = WriteCommit.ServerSetting;

    /// <summary>A pause of up to this long (uniformly random) before each operation that does not follow a write.</summary>
    public TimeSpan ThinkTime { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>The run lasts at least this long.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>And records at least this many operations (the background writer's included)…</summary>
    public int MinimumOperations { get; init; }

    /// <summary>…unless it has run this long.</summary>
    public TimeSpan MaximumDuration { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Seed of the sessions' random choices.</summary>
    public int Seed { get; init; } = 13;
}
