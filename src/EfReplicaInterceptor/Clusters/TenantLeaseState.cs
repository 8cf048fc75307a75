using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// One lease of a DbContext bound to a tenant: the tenant's cluster (held until the lease ends) and the connection EF was
/// given for it. Released exactly once: when EF resets the context for the pool, when the DI scope that leased it ends, or,
/// for a context that the pool discarded or the application never disposed, once the context has been garbage collected.
/// </summary>
internal sealed class TenantLease
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
/// Which tenant one DbContext works for in its current lease. An EF-internal scoped service, so there is one per DbContext
/// instance, kept across the leases of a pooled context; EF resets it (<see cref="IResettableService"/>) when the context
/// goes back to the pool, which ends the lease and lets the tenant's cluster go. A DbContext is used by one thread at a
/// time, so only the end of a lease needs to be atomic.
/// </summary>
internal sealed class TenantLeaseState : IResettableService, IDisposable
{
    private TenantLease? _current;

    /// <summary>
    /// Binds the lease <paramref name="context"/> is in to <paramref name="entry"/>, which has been acquired for it and is
    /// released when the lease ends (also when this throws). EF's own connection becomes a new connection of the tenant's
    /// primary data source, owned by the context; whatever connection an earlier lease left is disposed by EF.
    /// </summary>
    public TenantLease Bind(DbContext context, TenantClusterEntry entry)
    {
        End();
        DbConnection connection;
        try
        {
            connection = entry.Cluster.PrimaryDataSource.CreateConnection();
            context.Database.SetDbConnection(connection, contextOwnsConnection: true);
        }
        catch
        {
            entry.Owner.Release(entry, lease: null);
            throw;
        }

        var lease = new TenantLease(entry, context, connection);
        entry.Owner.Track(lease);
        Volatile.Write(ref _current, lease);
        return lease;
    }

    /// <summary>The lease <paramref name="context"/> is in, if it is bound to a tenant and not over.</summary>
    public TenantLease? Current(DbContext context)
        => Volatile.Read(ref _current) is { IsReleased: false } lease && lease.Number == context.ContextId.Lease ? lease : null;

    /// <summary>
    /// The current lease, after checking that <paramref name="connection"/> is still the connection bound to it (same object,
    /// same connection string); otherwise throws <see cref="EfReplicaTenantException"/>.
    /// </summary>
    public TenantLease Require(DbContext context, DbConnection? connection)
    {
        var lease = Current(context) ?? throw EfReplicaTenantException.NotBound();
        if (connection is null
            || !ReferenceEquals(connection, lease.Connection)
            || !string.Equals(connection.ConnectionString, lease.ConnectionString, StringComparison.Ordinal))
        {
            throw EfReplicaTenantException.ConnectionChanged(lease.Entry.TenantId);
        }

        return lease;
    }

    public void ResetState() => End();

    public Task ResetStateAsync(CancellationToken cancellationToken = default)
    {
        End();
        return Task.CompletedTask;
    }

    public void Dispose() => End();

    private void End() => Interlocked.Exchange(ref _current, null)?.Release();
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

/// <summary>Adds <see cref="TenantLeaseState"/> to the EF-internal services of tenant DbContexts.</summary>
internal sealed class TenantLeaseOptionsExtension : IDbContextOptionsExtension
{
    private DbContextOptionsExtensionInfo? _info;

    public DbContextOptionsExtensionInfo Info => _info ??= new ExtensionInfo(this);

    public void ApplyServices(IServiceCollection services)
    {
        services.TryAddScoped<TenantLeaseState>();
        services.TryAddEnumerable(ServiceDescriptor.Scoped<IResettableService, TenantLeaseState>(static provider => provider.GetRequiredService<TenantLeaseState>()));
    }

    public void Validate(IDbContextOptions options)
    {
    }

    private sealed class ExtensionInfo(IDbContextOptionsExtension extension) : DbContextOptionsExtensionInfo(extension)
    {
        public override bool IsDatabaseProvider => false;

        public override string LogFragment => "EfReplicaTenants ";

        public override int GetServiceProviderHashCode() => 0;

        public override bool ShouldUseSameServiceProvider(DbContextOptionsExtensionInfo other) => other is ExtensionInfo;

        public override void PopulateDebugInfo(IDictionary<string, string> debugInfo) => debugInfo["EfReplica:Tenants"] = "1";
    }
}
