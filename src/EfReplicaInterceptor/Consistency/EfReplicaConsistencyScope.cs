using EfReplicaInterceptor.Consistency;

namespace EfReplicaInterceptor;

/// <summary>
/// An ambient read-your-writes scope: every DbContext used inside it (one HTTP request, one message handler) sees the
/// writes made inside it, while reads still go to replicas that have replayed those writes. Created by
/// <see cref="EfReplicaScope.BeginConsistency(string?)"/>; dispose it to end it. Its position can be carried to another
/// process as a token (<see cref="GetTokenAsync"/>) and restored there.
/// </summary>
public sealed class EfReplicaConsistencyScope : IDisposable
{
    private readonly EfReplicaConsistencyScope? _parent;
    private bool _disposed;

    internal EfReplicaConsistencyScope(EfReplicaConsistencyScope? parent, string? token)
    {
        _parent = parent;
        if (!string.IsNullOrEmpty(token))
        {
            State.Restore(token);
        }
    }

    internal ReadYourWritesState State { get; } = new();

    internal EfReplicaConsistencyScope? Parent => _parent;

    /// <summary>
    /// A compact opaque token (27 characters, safe in a cookie, a header or a message) for what this scope wrote and, with
    /// <see cref="EfReplicaOptions.MonotonicReads"/>, what its reads may have seen (so a scope restored from it neither
    /// misses those writes nor reads older data), or the token it was restored from, or <see langword="null"/> when it has
    /// none of these. Restore it elsewhere with <see cref="EfReplicaScope.BeginConsistency(string?)"/>. When a write's
    /// position has not been captured yet, or a read ran on the primary, this asks the primary once
    /// (<c>pg_current_wal_insert_lsn()</c>); reads on a replica are bounded by the replica's latest sample when it is recent
    /// enough, else by that same question.
    /// </summary>
    public async ValueTask<string?> GetTokenAsync(CancellationToken cancellationToken = default)
    {
        var lsn = State.RequiredLsn;
        if ((State.Writer ?? State.History.Reader) is { } cluster)
        {
            lsn = await cluster.Scopes.SeenPositionAsync(State, cancellationToken).ConfigureAwait(false);
        }

        var systemIdentifier = State.SystemIdentifier != 0 ? State.SystemIdentifier : State.History.Reader?.SystemIdentifier ?? 0;
        return lsn != 0 && systemIdentifier != 0 ? ConsistencyToken.Format(systemIdentifier, lsn) : State.RestoredToken;
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
}
