namespace EfReplicaInterceptor;

/// <summary>How reads are retried when a server fails over (section <c>EfReplica:Failover</c>).</summary>
public sealed class FailoverOptions
{
    /// <summary>
    /// Retries of a read (outside a transaction) that failed with a failover error, after the first attempt: the first
    /// retry runs at once on another replica or on the primary (with a fresh connection); later ones back off. 0 to 10.
    /// Writes and anything in a transaction are never retried. Default: 2.
    /// </summary>
    public int MaxRetries { get; set; } = 2;

    /// <summary>The base of the exponential backoff (with jitter) between later retries. Zero or more, and no longer than
    /// <see cref="MaxDelay"/>. Default: 50 ms.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest backoff between two retries. Must be positive and at least <see cref="BaseDelay"/>. Default: 1 second.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(1);
}
