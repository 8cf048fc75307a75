using EfReplicaInterceptor.Consistency;

namespace EfReplicaInterceptor;

/// <summary>
/// An ambient read-your-writes scope: every DbContext used inside it (one HTTP request, one message handler) sees the
/// writes made inside it, while reads still go to replicas that have replayed those writes. Created by
/// <see cref="EfReplicaScope.BeginConsistency(string?)"/>; dispose it to end it. Its position can be carried to another
/// process as a token (<see cref="GetTokenAsync"/>) and restored there. A scope that uses several clusters (named
/// clusters, tenants) keeps a position for each, and its token carries them all.
/// </summary>
public sealed class EfReplicaConsistencyScope : IDisposable
{
    private readonly EfReplicaConsistencyScope? _parent;
    private readonly string? _token;
    private readonly InvalidTokenHandling? _invalidTokenHandling;
    private readonly Lock _gate = new();
    private volatile ClusterState[] _clusters = [];
    private bool _disposed;

    internal EfReplicaConsistencyScope(EfReplicaConsistencyScope? parent, string? token, InvalidTokenHandling? invalidTokenHandling = null)
    {
        _parent = parent;
        _token = string.IsNullOrEmpty(token) ? null : token;
        _invalidTokenHandling = invalidTokenHandling;
    }

    internal EfReplicaConsistencyScope? Parent => _parent;

    /// <summary>
    /// This scope's state in <paramref name="cluster"/>, made on the cluster's first command in the scope, with the restored
    /// token to check there (each cluster takes its own part of it).
    /// </summary>
    internal ScopeState StateFor(ConsistencyResolver cluster)
    {
        foreach (var entry in _clusters)
        {
            if (ReferenceEquals(entry.Cluster, cluster))
            {
                return entry.State;
            }
        }

        lock (_gate)
        {
            foreach (var entry in _clusters)
            {
                if (ReferenceEquals(entry.Cluster, cluster))
                {
                    return entry.State;
                }
            }

            var state = new ScopeState { InvalidTokenHandling = _invalidTokenHandling };
            if (_token is not null)
            {
                state.Restore(_token);
            }

            _clusters = [.. _clusters, new ClusterState(cluster, state)];
            return state;
        }
    }

    /// <summary>
    /// A compact opaque token (27 characters for one cluster, safe in a cookie, a header or a message) for what this scope
    /// wrote and, with <see cref="EfReplicaOptions.MonotonicReads"/>, what its reads may have seen (so a scope restored from
    /// it neither misses those writes nor reads older data), in every cluster it used, plus the parts of the token it was
    /// restored from for clusters it did not use; or <see langword="null"/> when there is none of these. Restore it
    /// elsewhere with <see cref="EfReplicaScope.BeginConsistency(string?)"/>. When a write's position has not been captured
    /// yet, or a read ran on the primary, this asks that cluster's primary once (<c>pg_current_wal_insert_lsn()</c>); reads
    /// on a replica are bounded by the replica's latest sample when it is recent enough, else by that same question.
    /// </summary>
    public async ValueTask<string?> GetTokenAsync(CancellationToken cancellationToken = default)
    {
        var clusters = _clusters;
        if (clusters.Length == 0)
        {
            return _token; // no cluster used the scope: the token goes on as it came
        }

        var positions = new List<TokenPosition>(clusters.Length + 1);
        foreach (var (cluster, state) in clusters)
        {
            var lsn = state.RequiredLsn;
            if (state.HasWritten || state.Reads.HasRead)
            {
                lsn = await cluster.SeenPositionAsync(state, cancellationToken).ConfigureAwait(false);
            }

            var system = state.SystemIdentifier != 0 ? state.SystemIdentifier : cluster.SystemIdentifier;
            if (lsn != 0 && system != 0)
            {
                Merge(positions, new TokenPosition(system, lsn));
            }
        }

        // The restored token's parts for clusters this scope did not use, or did not check it in yet, go on unchanged (a
        // request that reads one cluster keeps what the last one wrote to another); none does once a cluster rejected the
        // token (malformed, or naming no cluster this process knows).
        if (ConsistencyToken.TryParse(_token, out var restored) && !Array.Exists(clusters, c => c.State.TokenRejected))
        {
            foreach (var part in restored)
            {
                Merge(positions, part);
            }
        }

        if (positions.Count > ConsistencyToken.MaxClusters)
        {
            positions.RemoveRange(ConsistencyToken.MaxClusters, positions.Count - ConsistencyToken.MaxClusters); // this scope's own come first
        }

        return positions.Count == 0 ? null : ConsistencyToken.Format([.. positions]);
    }

    /// <summary>
    /// Adds <paramref name="position"/>, or raises the position of its system identifier. Two clusters of one application
    /// that are copies of one database cluster share a system identifier (a restore, a clone): the token cannot tell them
    /// apart, and each then needs the higher of the two positions, which errs toward the primary, never toward a stale read
    /// (a position beyond a primary's own is lowered to it at its next sample).
    /// </summary>
    private static void Merge(List<TokenPosition> positions, TokenPosition position)
    {
        var index = positions.FindIndex(p => p.SystemIdentifier == position.SystemIdentifier);
        if (index < 0)
        {
            positions.Add(position);
        }
        else if (positions[index].Lsn < position.Lsn)
        {
            positions[index] = position;
        }
    }

    /// <summary>Ends the scope; the enclosing one (if any) becomes current again.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        EfReplicaScope.EndConsistency(this);
    }

    private readonly record struct ClusterState(ConsistencyResolver Cluster, ScopeState State);
}
