using System.Data.Common;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Which cluster's router serves a context, and the lease states of the contexts one set of interceptors serves. A single
/// cluster has one router for every context (<see cref="FixedRouterResolver"/>); tenant contexts find theirs through their
/// lease's binding, and guard it (the tenant resolver in Clusters).
/// </summary>
internal abstract class RouterResolver
{
    /// <summary>The per-lease state of every context these interceptors serve.</summary>
    public LeaseStates States { get; } = new();

    /// <summary>
    /// Before EF opens its connection or executes a command: the router for <paramref name="context"/>, after any guard
    /// (throws when the command must not be sent).
    /// </summary>
    public abstract CommandRouter Require(DbContext? context, DbConnection? connection);

    /// <summary>After the fact (a command finished or failed, a transaction committed): the router, or null when none applies.</summary>
    public abstract CommandRouter? Find(DbContext? context);

    /// <summary>EF is about to create its own connection; a resolver may refuse it.</summary>
    public virtual InterceptionResult<DbConnection> ConnectionCreating(ConnectionCreatingEventData eventData, InterceptionResult<DbConnection> result) => result;

    /// <summary>
    /// A command or transaction of <paramref name="context"/> failed over with <paramref name="failover"/>: when it certainly
    /// was not applied, the lease's in-flight write is taken back (<see cref="LeaseState.WithdrawWrite"/>). Returns the
    /// exception, to be thrown.
    /// </summary>
    public EfReplicaFailoverException Failed(DbContext? context, EfReplicaFailoverException failover)
    {
        if (failover.Outcome == FailoverOutcome.NotApplied && context is not null)
        {
            States.Find(context)?.WithdrawWrite();
        }

        return failover;
    }

    /// <summary>The lease state of <paramref name="context"/>, or null for a command outside any context.</summary>
    public LeaseState? Lease(DbContext? context) => context is null ? null : States.Get(context);
}

/// <summary>The resolver of one cluster's own interceptors: every context is served by that cluster.</summary>
internal sealed class FixedRouterResolver(CommandRouter router) : RouterResolver
{
    public override CommandRouter Require(DbContext? context, DbConnection? connection) => router;

    public override CommandRouter? Find(DbContext? context) => router;
}
