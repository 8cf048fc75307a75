namespace EfReplicaInterceptor;

/// <summary>
/// A consistency token given to <see cref="EfReplicaScope.BeginConsistency(string?)"/> is malformed or was issued by another
/// database cluster. Thrown by the first command of the scope that needs the token, when
/// <see cref="EfReplicaOptions.InvalidTokenHandling"/> (or the scope's own choice, given to
/// <see cref="EfReplicaScope.BeginConsistency(string?, InvalidTokenHandling)"/>) is <see cref="InvalidTokenHandling.Throw"/> (the default); with
/// <see cref="InvalidTokenHandling.Ignore"/> the token is ignored and event 1003 is logged instead. The message says why and
/// never contains the token.
/// </summary>
public sealed class EfReplicaConsistencyTokenException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="cluster">The name of the cluster the token was used with.</param>
    /// <param name="reason">Why the token is not valid there.</param>
    public EfReplicaConsistencyTokenException(string cluster, string reason)
        : base($"The consistency token given to EfReplicaScope.BeginConsistency is not valid for cluster '{cluster}': {reason}. Set EfReplica:InvalidTokenHandling to Ignore to read without it.")
    {
        Cluster = cluster;
        Reason = reason;
    }

    /// <summary>The name of the cluster the token was used with.</summary>
    public string Cluster { get; }

    /// <summary>Why the token is not valid there (for example that it was issued by another database cluster).</summary>
    public string Reason { get; }
}
