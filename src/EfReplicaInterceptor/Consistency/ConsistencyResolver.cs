using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Consistency;

/// <summary>Where a read of consistency scopes goes: a replica that may serve them, else the primary (null) for <see cref="Reason"/>.</summary>
internal readonly record struct ConsistencyChoice(ReplicaEndpoint? Replica, RoutingReason Reason, bool Constrained);

/// <summary>
/// The one place that decides where a read of a consistency scope (the lease, the ambient scope, a restored token) may go,
/// for one cluster: read-your-writes by WAL position and, with <see cref="EfReplicaOptions.MonotonicReads"/>, monotonic
/// reads. Without monotonic reads a scope simply has no history (<see cref="Past"/> is null): the same decisions apply.
/// <list type="bullet">
/// <item><see cref="TryChoose"/> decides a plain read without I/O when it can (the hot path): a scope with no past takes
/// the balancing policy's replica (which becomes its own); a scope keeps its own replica while it is in rotation in the same
/// incarnation and has replayed the scope's floor.</item>
/// <item><see cref="ResolveAsync"/> decides the rest: checks a restored token, captures one primary position for the
/// scopes' pending writes and unbounded reads, bounds the reads served by the scope's own replica when it must leave it, and
/// takes a replica known to have replayed the larger of the writes and the floor, else asks the replicas, else waits up to
/// <see cref="EfReplicaOptions.ReadYourWritesMaxWait"/> (after a write), else the primary.</item>
/// <item><see cref="ReadServed"/> and <see cref="RunsOnPrimary"/> record where a scope's commands ran.</item>
/// <item><see cref="BeforePrimaryAsync(ScopeState?, bool, CancellationToken)"/> holds a command of a scope that read on a
/// standby until the primary shows what that standby showed (the Long Fork wait), whatever sends the command there.</item>
/// </list>
/// Every round trip to a server goes through <see cref="IConsistencyRoundTrips"/>. Holds no per-call state.
/// </summary>
internal sealed partial class ConsistencyResolver
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);

    private readonly string _cluster;
    private readonly IConsistencyRoundTrips _roundTrips;
    private readonly PrimaryPosition _primaryPosition;
    private readonly ReplicaSelector _selector;
    private readonly TimeSpan _maxWait;
    private readonly InvalidTokenHandling _invalidTokenHandling;
    private readonly bool _captureWritePosition;
    private readonly EfReplicaMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ILogger _topologyLogger;
    private readonly TimeProvider _timeProvider;
    private readonly LongForkWait? _longFork;

    public ConsistencyResolver(
        string cluster,
        IConsistencyRoundTrips roundTrips,
        PrimaryPosition primaryPosition,
        ReplicaSelector selector,
        EfReplicaOptions options,
        EfReplicaMetrics metrics,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider,
        LongForkWait? longFork = null)
    {
        _cluster = cluster;
        _roundTrips = roundTrips;
        _primaryPosition = primaryPosition;
        _selector = selector;
        _maxWait = options.ReadYourWritesMaxWait;
        _invalidTokenHandling = options.InvalidTokenHandling;
        _captureWritePosition = options.CaptureWritePositionForTests;
        MonotonicReads = options.MonotonicReads && !options.ShadowMode;
        _metrics = metrics;
        _logger = loggerFactory.CreateLogger(Log.RoutingCategory);
        _topologyLogger = loggerFactory.CreateLogger(Log.TopologyCategory);
        _timeProvider = timeProvider;
        _longFork = longFork;
    }

    /// <summary>Monotonic reads are on (and shadow mode, which runs everything on the primary, is off): scopes keep a history.</summary>
    public bool MonotonicReads { get; }

    /// <summary>The cluster's system identifier (0 until the primary was first seen).</summary>
    public ulong SystemIdentifier => _primaryPosition.SystemIdentifier;

    /// <summary>
    /// The replica for a plain read (meeting <paramref name="requirement"/>) when it can be decided without a round trip:
    /// the scopes have no past (any replica, which becomes theirs), or their own replica qualifies. False when
    /// <see cref="ResolveAsync"/> must decide. With true and a null <paramref name="replica"/>, no replica can take it.
    /// <paramref name="hadPast"/>: the scopes had read before, so should the replica fail, the read must not go to just any
    /// other replica. The hot path: no allocation, and no lock while the scopes keep no history.
    /// </summary>
    public bool TryChoose(ScopeState? lease, ScopeState? ambient, in ReplicaRequirement requirement, out ReplicaEndpoint? replica, out bool lagging, out bool hadPast)
    {
        replica = null;
        lagging = false;
        hadPast = true;
        var (leasePast, ambientPast) = (Past(lease), Past(ambient));
        if (MonotonicReads && (lease?.RestoredToken is not null || ambient?.RestoredToken is not null))
        {
            return false; // a restored token is a past: checked first
        }

        if (leasePast?.HasPast != true && ambientPast?.HasPast != true)
        {
            hadPast = false;
            replica = _selector.Select(requirement, 0, out lagging);
            if (replica is not null)
            {
                leasePast?.Stick(replica, replica.Incarnation);
                ambientPast?.Stick(replica, replica.Incarnation);
            }

            return true;
        }

        if (!_selector.AnyInRotation(out lagging))
        {
            // The primary: no replica could take it whatever the scope saw (the Long Fork wait, when due, runs where the command
            // is run on the primary: BeforePrimaryAsync).
            return true;
        }

        if (!BoundBySample(leasePast) || !BoundBySample(ambientPast) || (Own(leasePast) ?? Own(ambientPast)) is not { } own
            || HasOtherReplica(leasePast, own) || HasOtherReplica(ambientPast, own)
            || !_selector.Accepts(own, requirement.AtLeast(Floor(leasePast, ambientPast))) || !own.TryAcquire())
        {
            return false;
        }

        leasePast?.Stick(own, own.Incarnation);
        ambientPast?.Stick(own, own.Incarnation);
        replica = own;
        return true;
    }

    /// <summary>
    /// Resolves a read of scopes with a past, or after a write (<paramref name="readYourWrites"/>: the scopes' writes must
    /// be seen too). Sync callers pass <paramref name="async"/> false and every step runs synchronously. A capture on the
    /// primary runs on <paramref name="primaryConnection"/> when given (the command's own connection, open and idle on it).
    /// </summary>
    /// <remarks>
    /// A read resolved to the primary passes the Long Fork wait where it is run there (<see cref="BeforePrimaryAsync(ScopeState?, bool, CancellationToken)"/>,
    /// called by the router and the read executor for every command of a scope that runs on the primary), not here.
    /// </remarks>
    public async ValueTask<ConsistencyChoice> ResolveAsync(
        ScopeState? lease, ScopeState? ambient, ReplicaRequirement requirement, bool readYourWrites, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var (leasePast, ambientPast) = (Past(lease), Past(ambient));
        try
        {
            await CheckRestoredTokenAsync(lease, primaryConnection, async, cancellationToken).ConfigureAwait(false);
            await CheckRestoredTokenAsync(ambient, primaryConnection, async, cancellationToken).ConfigureAwait(false);

            var writesPending = readYourWrites && (lease?.IsPending == true || ambient?.IsPending == true);
            if (!writesPending && !_selector.AnyInRotation(out var noneFresh))
            {
                // No replica could take it whatever the scope saw: the primary, without a round trip for a bound.
                return new(null, noneFresh ? RoutingReason.ReplicaLagging : RoutingReason.ReplicaUnavailable, false);
            }

            if (writesPending || !BoundBySample(leasePast) || !BoundBySample(ambientPast))
            {
                await CaptureAsync(lease, ambient, writesPending, primaryConnection, async, cancellationToken).ConfigureAwait(false);
            }

            VerifyRestoredPosition(lease);
            VerifyRestoredPosition(ambient);
            var required = readYourWrites ? Math.Max(lease?.RequiredLsn ?? 0, ambient?.RequiredLsn ?? 0) : 0;

            // The scope's own replica first: it needs no bound of the reads it served.
            var own = Own(leasePast) ?? Own(ambientPast);
            if (own is not null)
            {
                await BoundReadsAsync(lease, ambient, own, primaryConnection, async, cancellationToken).ConfigureAwait(false);
                var onOwn = requirement.AtLeast(Math.Max(required, Floor(leasePast, ambientPast)));
                if (_selector.Accepts(own, onOwn)
                    || (onOwn.Kind == ReplicaRequirementKind.CaughtUp && await CheckReplayAsync(own, async, cancellationToken).ConfigureAwait(false) && _selector.Accepts(own, onOwn)))
                {
                    if (own.TryAcquire())
                    {
                        return Chosen(leasePast, ambientPast, own, constrained: true);
                    }
                }
            }

            // Elsewhere: every earlier read bounded first, then a replica that has replayed the bound.
            await BoundReadsAsync(lease, ambient, null, primaryConnection, async, cancellationToken).ConfigureAwait(false);
            var floor = Floor(leasePast, ambientPast);
            var need = requirement.AtLeast(Math.Max(required, floor));
            var other = _selector.Select(need, 0, out var lagging);
            if (other is null && need.Kind == ReplicaRequirementKind.CaughtUp)
            {
                other = await WaitForReplicaAsync(need, required > 0 ? _maxWait : TimeSpan.Zero, async, cancellationToken).ConfigureAwait(false);
            }

            if (other is not null)
            {
                // A scope with a history (or a requirement) must not fall to just any replica should this one fail.
                return Chosen(leasePast, ambientPast, other, constrained: need.IsConstrained || leasePast is not null || ambientPast is not null);
            }

            // Replicas in rotation that have not replayed what the scope saw are lagging behind it.
            var reason = required > 0 ? RoutingReason.AfterWrite
                : lagging || (floor > 0 && _selector.AnyInRotation(out _)) ? RoutingReason.ReplicaLagging
                : RoutingReason.ReplicaUnavailable;
            return new(null, reason, false);
        }
        catch (Exception exception) when (FailoverErrors.IsFailoverOfOwnStatement(exception) && !cancellationToken.IsCancellationRequested)
        {
            // A position cannot be obtained from the primary: the read goes there (nothing is lost, it is the newest).
            return new(null, RoutingReason.AfterWrite, false);
        }
    }

    /// <summary>What <paramref name="scope"/>'s reads may have seen, or null when scopes keep no history (monotonic reads off).</summary>
    private ReadHistory? Past(ScopeState? scope) => MonotonicReads ? scope?.Reads : null;

    private static ConsistencyChoice Chosen(ReadHistory? leasePast, ReadHistory? ambientPast, ReplicaEndpoint replica, bool constrained)
    {
        leasePast?.Stick(replica, replica.Incarnation);
        ambientPast?.Stick(replica, replica.Incarnation);
        return new(replica, RoutingReason.Read, constrained);
    }

    /// <summary>The scope's own replica while it runs in the incarnation the scope chose it in.</summary>
    private static ReplicaEndpoint? Own(ReadHistory? past)
        => past?.Sticky is ({ } replica, var incarnation) && replica.Incarnation == incarnation ? replica : null;

    private static bool HasOtherReplica(ReadHistory? past, ReplicaEndpoint own)
        => past?.Sticky is ({ } replica, var incarnation) && (!ReferenceEquals(replica, own) || incarnation != own.Incarnation);

    private static ulong Floor(ReadHistory? leasePast, ReadHistory? ambientPast)
        => Math.Max(leasePast?.Floor ?? 0, ambientPast?.Floor ?? 0);
}
