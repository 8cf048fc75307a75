namespace EfReplicaInterceptor;

/// <summary>How reads are retried when a server fails over (section <c>EfReplica:Failover</c>).</summary>
public sealed class FailoverOptions
{
    /// <summary>
    /// Retries of a read (outside a transaction) that failed with a failover error, after the first attempt: the first
    /// retry runs at once on another replica or on the primary (with a fresh connection); later ones back off. 0 to 10.
    /// Writes and anything in a transaction are never retried. When the retries are spent on a primary that is gone (a role
    /// change: no standby took the read and the primary's connection string reaches no primary yet), the read waits for the
    /// topology up to <see cref="PrimaryWait"/> from its start, running on a listed node as soon as it answers as the
    /// primary; 0 retries: no wait either. Default: 2.
    /// </summary>
    public int MaxRetries { get; set; } = 2;

    /// <summary>The base of the exponential backoff (with jitter) between later retries. Zero or more, and no longer than
    /// <see cref="MaxDelay"/>. Default: 50 ms.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest backoff between two retries. Must be positive and at least <see cref="BaseDelay"/>. Default: 1 second.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The library's own deadline for what it runs on a server (a read, a read-your-writes position capture or replay
    /// check): once the operation has run this long <em>and</em> the server has answered nothing else for as long (the
    /// monitor probes every server on its own, every <see cref="EfReplicaOptions.HealthCheckInterval"/>), the server is
    /// taken as hung: the library closes the connection (without the server's cooperation, which a hung server cannot
    /// give), the replica leaves the rotation, and the read moves to another replica or the primary. A slow query on a
    /// server that still answers its probes is never cut short by it (the command timeout applies there, as usual). When
    /// set, at least <see cref="EfReplicaOptions.HealthCheckInterval"/> plus <see cref="EfReplicaOptions.HealthCheckTimeout"/>
    /// (a healthy server answers a probe at least that often). Default: that sum, 3 seconds with their defaults.
    /// </summary>
    public TimeSpan? ReadDeadline { get; set; }

    /// <summary>
    /// How long a read that no server could run because the primary is gone (a switchover or failover in progress: no
    /// standby has what the read must see, typically a read-back right after a write, and the primary's connection string
    /// reaches no primary yet) waits for the cluster, from the read's start: it polls the topology and runs as soon as a
    /// listed node answers as the primary or a standby has replayed what the read needs, then fails typed
    /// (<see cref="EfReplicaFailoverException"/>, <see cref="FailoverOutcome.NotApplied"/>). It waits on no server: every
    /// attempt during it is under <see cref="ReadDeadline"/>, so a hung server still holds nothing longer than that. Set it
    /// to cover your HA manager's failover (Patroni: about its <c>ttl</c>, 30 s by default, plus a few seconds). Positive
    /// when set. Default: the read deadline in force.
    /// </summary>
    public TimeSpan? PrimaryWait { get; set; }
}
