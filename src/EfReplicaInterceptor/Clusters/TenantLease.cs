using System.Data.Common;
using EfReplicaInterceptor.Routing;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// One lease of a DbContext bound to a tenant: the tenant's cluster (held until the lease ends) and the connection EF was
/// given for it. Kept in the context's <see cref="LeaseState"/> like every other per-lease fact, and released exactly once:
/// when EF resets the context for the pool, when the DI scope that leased it ends, or, for a context that the pool
/// discarded or the application never disposed, once the context has been garbage collected.
/// </summary>
internal sealed class TenantLease : ILeaseBinding
{
    private readonly WeakReference<DbContext> _context;
    private int _released;

    public TenantLease(TenantClusterEntry entry, DbContext context, DbConnection connection)
    {
        Entry = entry;
        _context = new WeakReference<DbContext>(context);
        Number = context.ContextId.Lease;
        Connection = connection;
        ConnectionString = connection.ConnectionString;
    }

    public TenantClusterEntry Entry { get; }

    /// <summary>The context's lease number (<c>DbContext.ContextId.Lease</c>) this binding belongs to.</summary>
    public int Number { get; }

    /// <summary>The connection EF was given: created from the tenant's primary data source.</summary>
    public DbConnection Connection { get; }

    /// <summary>Its connection string when it was given (a changed one means the connection was pointed elsewhere).</summary>
    public string? ConnectionString { get; }

    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>The context was collected while the lease was held: it can run nothing any more.</summary>
    public bool IsAbandoned => !_context.TryGetTarget(out _);

    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            Entry.Owner.Release(Entry, this);
        }
    }
}

/// <summary>
/// Ends the lease of a tenant DbContext resolved from a DI scope when the scope ends, right after the scope disposed the
/// context: EF does not reset a context that its pool discards (more contexts returned than the pool keeps), so without
/// this the tenant's cluster would stay held until the context is garbage collected.
/// </summary>
internal sealed class TenantScopedLease<TContext>(TContext context, TenantLease lease) : IDisposable
    where TContext : DbContext
{
    public TContext Context { get; } = context;

    public void Dispose() => lease.Release();
}
