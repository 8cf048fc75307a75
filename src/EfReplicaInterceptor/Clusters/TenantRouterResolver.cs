using System.Data.Common;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Interception;
using EfReplicaInterceptor.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// Finds the cluster of a tenant DbContext (whose options, pooled, cannot change per lease) from the tenant its current
/// lease is bound to, so that the library's ordinary interceptors route it within that tenant's cluster. It is also the
/// isolation guard: before a connection opens and before a command executes, the lease must be bound to a tenant and EF's
/// connection must be the very connection bound for that lease (created from the tenant's primary data source); otherwise
/// it throws <see cref="EfReplicaTenantException"/>, so nothing is sent anywhere. EF never creates a connection for a
/// tenant context: a request to create one means the lease has none bound, and is refused the same way.
/// </summary>
internal sealed class TenantRouterResolver(ILogger logger) : RouterResolver
{
    /// <summary>
    /// Binds <paramref name="context"/>'s current lease to <paramref name="entry"/> (acquired for it and released when the
    /// lease ends, also when this throws). EF's own connection becomes a new connection of the tenant's primary data source,
    /// owned by the context; whatever connection an earlier lease left is disposed by EF.
    /// </summary>
    public TenantLease Bind(DbContext context, TenantClusterEntry entry)
    {
        LeaseState state;
        DbConnection connection;
        try
        {
            state = States.Get(context);
            state.EndBinding();
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
        state.Bind(lease);
        return lease;
    }

    public override CommandRouter Require(DbContext? context, DbConnection? connection)
    {
        try
        {
            var lease = Current(context) ?? throw EfReplicaTenantException.NotBound();
            if (connection is null
                || !ReferenceEquals(connection, lease.Connection)
                || !string.Equals(connection.ConnectionString, lease.ConnectionString, StringComparison.Ordinal))
            {
                throw EfReplicaTenantException.ConnectionChanged(lease.Entry.TenantId);
            }

            return lease.Entry.Cluster.Router;
        }
        catch (EfReplicaTenantException exception)
        {
            Log.TenantIsolationViolation(logger, exception.TenantId ?? "(none)", exception.Message);
            throw;
        }
    }

    public override CommandRouter? Find(DbContext? context) => Current(context)?.Entry.Cluster.Router;

    public override InterceptionResult<DbConnection> ConnectionCreating(ConnectionCreatingEventData eventData, InterceptionResult<DbConnection> result)
    {
        var exception = Current(eventData.Context) is { } lease ? EfReplicaTenantException.ConnectionChanged(lease.Entry.TenantId) : EfReplicaTenantException.NotBound();
        Log.TenantIsolationViolation(logger, exception.TenantId ?? "(none)", exception.Message);
        throw exception;
    }

    /// <summary>The lease <paramref name="context"/> is in, if it is bound to a tenant and not over.</summary>
    private TenantLease? Current(DbContext? context)
        => context is not null && States.Find(context)?.Binding is TenantLease { IsReleased: false } lease && lease.Number == context.ContextId.Lease ? lease : null;
}
