using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Consistency;

/// <summary>Where a read that must see its scopes' writes goes: a replica known to have them, else the primary (null).</summary>
internal readonly record struct ReadYourWritesChoice(ReplicaEndpoint? Replica, RoutingReason Reason, bool Constrained);

/// <summary>
/// Read-your-writes for one cluster, by WAL position: captures the position of a scope's writes on the primary (one round
/// trip per unit of work), checks restored tokens, and finds a replica that has replayed the position (from the monitor's
/// knowledge, else by asking the replicas), waiting up to <see cref="EfReplicaOptions.ReadYourWritesMaxWait"/>; otherwise the
/// read goes to the primary. With <see cref="EfReplicaOptions.MonotonicReads"/> the decision is <see cref="ScopeReads"/>'
/// (which uses the steps here); <see cref="ResolveAsync"/> serves the clusters without it.
/// </summary>
internal sealed class ReadYourWrites
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);

    private readonly string _cluster;
    private readonly WatchedServer _primary;
    private readonly PrimaryPosition _primaryPosition;
    private readonly ReplicaSelector _selector;
    private readonly TimeSpan _maxWait;
    private readonly InvalidTokenHandling _invalidTokenHandling;
    private readonly bool _captureWritePosition;
    private readonly EfReplicaMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ILogger _topologyLogger;
    private readonly TimeProvider _timeProvider;

    public ReadYourWrites(
        string cluster,
        WatchedServer primary,
        PrimaryPosition primaryPosition,
        ReplicaSelector selector,
        EfReplicaOptions options,
        EfReplicaMetrics metrics,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider)
    {
        _cluster = cluster;
        _primary = primary;
        _primaryPosition = primaryPosition;
        _selector = selector;
        _maxWait = options.ReadYourWritesMaxWait;
        _invalidTokenHandling = options.InvalidTokenHandling;
        _captureWritePosition = options.CaptureWritePositionForTests;
        MonotonicReads = options.MonotonicReads && !options.ShadowMode;
        Scopes = new ScopeReads(this, selector, timeProvider);
        _metrics = metrics;
        _logger = loggerFactory.CreateLogger(Log.RoutingCategory);
        _topologyLogger = loggerFactory.CreateLogger(Log.TopologyCategory);
        _timeProvider = timeProvider;
    }

    /// <summary>The scopes' reads: monotonic reads, and read-your-writes with them (see <see cref="ScopeReads"/>).</summary>
    public ScopeReads Scopes { get; }

    /// <summary>Monotonic reads are on (and shadow mode, which runs everything on the primary, is off).</summary>
    public bool MonotonicReads { get; }

    /// <summary>The cluster's system identifier (0 until the primary was first seen).</summary>
    public ulong SystemIdentifier => _primaryPosition.SystemIdentifier;

    /// <summary>
    /// The primary's position sampled last by a query sent after a given moment (see <see cref="PrimaryPosition.NewestSent"/>):
    /// bounds the reads of a scope that finished before then without a capture of its own.
    /// </summary>
    public PrimaryPosition.Bound? NewestPrimaryBound => _primaryPosition.NewestSent;

    /// <summary>How long a read after a write may wait for a replica (<see cref="EfReplicaOptions.ReadYourWritesMaxWait"/>).</summary>
    public TimeSpan MaxWait => _maxWait;

    /// <summary>
    /// Resolves a read in scopes that wrote (or restored a token). Sync callers pass <paramref name="async"/> false and every
    /// step runs synchronously.
    /// </summary>
    public async ValueTask<ReadYourWritesChoice> ResolveAsync(ReadYourWritesState? lease, ReadYourWritesState? ambient, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        try
        {
            if (!await CheckRestoredTokenAsync(lease, primaryConnection, async, cancellationToken).ConfigureAwait(false)
                | !await CheckRestoredTokenAsync(ambient, primaryConnection, async, cancellationToken).ConfigureAwait(false))
            {
                return new(null, RoutingReason.AfterWrite, false);
            }

            if (lease?.IsPending == true || ambient?.IsPending == true)
            {
                await CaptureAsync(lease, ambient, primaryConnection, async, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception exception) when (FailoverErrors.IsFailoverOfOwnStatement(exception) && !cancellationToken.IsCancellationRequested)
        {
            // The position cannot be obtained: the scope's reads stay on the primary (the write is pending still).
            return new(null, RoutingReason.AfterWrite, false);
        }

        VerifyRestoredPosition(lease);
        VerifyRestoredPosition(ambient);
        var required = Math.Max(lease?.RequiredLsn ?? 0, ambient?.RequiredLsn ?? 0);
        if (required == 0)
        {
            var any = _selector.Select(ReplicaRequirement.Any, 0, out var lagging);
            return any is null
                ? new(null, lagging ? RoutingReason.ReplicaLagging : RoutingReason.ReplicaUnavailable, false)
                : new(any, RoutingReason.Read, false);
        }

        var caughtUp = await WaitForReplicaAsync(ReplicaRequirement.CaughtUpTo(required), _maxWait, async, cancellationToken).ConfigureAwait(false);
        return caughtUp is not null ? new(caughtUp, RoutingReason.Read, true) : new(null, RoutingReason.AfterWrite, false);
    }

    /// <summary>
    /// A replica that meets <paramref name="requirement"/> (a caught-up one): known to, else asked directly, again every few
    /// milliseconds for up to <paramref name="maxWait"/>; null when none did.
    /// </summary>
    internal async ValueTask<ReplicaEndpoint?> WaitForReplicaAsync(ReplicaRequirement requirement, TimeSpan maxWait, bool async, CancellationToken cancellationToken)
    {
        var deadline = _timeProvider.GetTimestamp() + (long)(maxWait.TotalSeconds * _timeProvider.TimestampFrequency);
        while (true)
        {
            var caughtUp = _selector.Select(requirement, 0, out _)
                ?? await CheckReplayDirectlyAsync(requirement, async, cancellationToken).ConfigureAwait(false);
            if (caughtUp is not null || _timeProvider.GetTimestamp() >= deadline)
            {
                return caughtUp;
            }

            if (async)
            {
                await Task.Delay(PollInterval, _timeProvider, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                Task.Delay(PollInterval, _timeProvider, cancellationToken).GetAwaiter().GetResult(); // the cluster's clock, not Thread.Sleep
            }
        }
    }

    /// <summary>Captures the primary's WAL position for a scope's pending writes (for a token).</summary>
    public async ValueTask CaptureAsync(ReadYourWritesState state, CancellationToken cancellationToken)
    {
        if (state.IsPending)
        {
            await CaptureAsync(state, null, primaryConnection: null, async: true, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask CaptureAsync(ReadYourWritesState? first, ReadYourWritesState? second, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var firstGeneration = first?.Generation ?? 0;
        var secondGeneration = second?.Generation ?? 0;
        var (lsn, systemIdentifier) = await CapturePrimaryAsync(primaryConnection, async, cancellationToken).ConfigureAwait(false);
        first?.Satisfy(lsn, systemIdentifier, firstGeneration);
        second?.Satisfy(lsn, systemIdentifier, secondGeneration);
    }

    /// <summary>
    /// One capture of the primary's position, on <paramref name="primaryConnection"/> when given (the command's own
    /// connection, open and idle on the primary: with the interceptors alone EF has opened it for every command, and a second
    /// primary connection per unit of work would double the primary's client connections), else on one of the pool's.
    /// </summary>
    internal async ValueTask<(ulong Lsn, ulong SystemIdentifier)> CapturePrimaryAsync(NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        _metrics.PositionCaptured(_cluster);
        var sentAt = _timeProvider.GetTimestamp();
        var (lsn, systemIdentifier) = await ServerQueries.CapturePositionAsync(_primary, primaryConnection, async, cancellationToken, _captureWritePosition).ConfigureAwait(false);
        _primaryPosition.Record(_timeProvider.GetTimestamp(), lsn, systemIdentifier, _captureWritePosition ? 0 : sentAt);
        return (lsn, systemIdentifier);
    }

    /// <summary>
    /// Checks a restored token on first use: well-formed and from this cluster (its system identifier, known from the
    /// monitor's probes, so usually no round trip). A position beyond every primary position seen so far is accepted but
    /// verified against the next primary sample (<see cref="VerifyRestoredPosition"/>): a forged token, or one from before a
    /// failover, is lowered then, so it cannot pin reads to the primary forever. Returns false when reads must go to the
    /// primary for now.
    /// </summary>
    internal async ValueTask<bool> CheckRestoredTokenAsync(ReadYourWritesState? state, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var token = state?.TakeRestoredToken();
        if (token is null)
        {
            return true;
        }

        if (!ConsistencyToken.TryParse(token, out var parts))
        {
            return RejectToken("it is not a consistency token (expected 'efr1.' or 'efr2.' and base64url characters)");
        }

        var clusterSystem = _primaryPosition.SystemIdentifier;
        if (clusterSystem == 0)
        {
            (_, clusterSystem) = await CapturePrimaryAsync(primaryConnection, async, cancellationToken).ConfigureAwait(false);
        }

        var own = Array.FindIndex(parts, part => part.SystemIdentifier == clusterSystem);
        if (own < 0)
        {
            // A token for other clusters of this application (a request that used only those) asks nothing of this one.
            return Array.Exists(parts, part => KnownSystems.Contains(part.SystemIdentifier))
                ? true
                : RejectToken(parts.Length == 1
                    ? $"it was issued by another database cluster (system identifier {parts[0].SystemIdentifier}, this cluster is {clusterSystem})"
                    : $"it was issued by other database clusters (none is this cluster, {clusterSystem}, or another this process reached)");
        }

        var (tokenSystem, tokenLsn) = parts[own];
        if (_primaryPosition.Latest is { } latest && tokenLsn <= latest.Lsn)
        {
            state!.Require(tokenLsn, tokenSystem);
            state.History.Raise(tokenLsn); // what the token's scope saw; a future position is raised once verified
        }
        else
        {
            state!.RequireUnverified(tokenLsn, tokenSystem, _timeProvider.GetTimestamp());
        }

        return true;

        bool RejectToken(string why)
        {
            state!.TokenRejected = true;
            if ((state!.InvalidTokenHandling ?? _invalidTokenHandling) == InvalidTokenHandling.Throw)
            {
                throw new EfReplicaConsistencyTokenException(_cluster, why);
            }

            Log.ConsistencyTokenIgnored(_logger, _cluster, why);
            return true;
        }
    }

    /// <summary>Lowers a restored position that a primary sample taken after the restore shows to be from the future.</summary>
    internal void VerifyRestoredPosition(ReadYourWritesState? state)
    {
        if (state is null)
        {
            return;
        }

        var since = state.UnverifiedSince;
        if (since == 0 || _primaryPosition.Latest is not { } latest || latest.Timestamp <= since)
        {
            return;
        }

        if (state.RequiredLsn > latest.Lsn)
        {
            Log.ConsistencyTokenClamped(_logger, _cluster);
            state.Clamp(latest.Lsn);
        }
        else
        {
            state.Verified();
        }

        state.History.Raise(state.RequiredLsn);
    }

    /// <summary>Asks each replica in rotation for its replayed position (one small query each) until one has the position.</summary>
    internal async ValueTask<ReplicaEndpoint?> CheckReplayDirectlyAsync(ReplicaRequirement requirement, bool async, CancellationToken cancellationToken)
    {
        foreach (var replica in _selector.Replicas)
        {
            if (replica.IsAdmitted
                && await CheckReplayAsync(replica, async, cancellationToken).ConfigureAwait(false)
                && replica.KnownReplayLsn >= requirement.Lsn
                && replica.TryAcquire())
            {
                return replica;
            }
        }

        return null;
    }

    /// <summary>
    /// Asks <paramref name="replica"/> for its replayed position (one small query) and records it; false when the check
    /// failed (a failure that says something about the replica takes it out of rotation).
    /// </summary>
    internal async ValueTask<bool> CheckReplayAsync(ReplicaEndpoint replica, bool async, CancellationToken cancellationToken)
    {
        if (replica.IsRetired)
        {
            return false; // no longer one of the cluster's replicas (a scope's own replica that left the topology)
        }

        try
        {
            _metrics.ReplayChecked(_cluster);
            var sentAt = _timeProvider.GetTimestamp();
            var (replayed, startedAt) = await ServerQueries.ReadReplayPositionAsync(replica.Server, async, cancellationToken).ConfigureAwait(false);
            if (replayed is { } lsn)
            {
                replica.ObserveReplay(lsn, startedAt, sentAt);
            }

            return replayed is not null;
        }
        catch (Exception exception) when (FailoverErrors.Classify(exception, FailurePhase.Opening, onStandby: true) is not ServerErrorKind.None and var kind && !cancellationToken.IsCancellationRequested)
        {
            // Only a failure that says something about the replica takes it out (not an expired idle session, say).
            if (FailurePolicy.For(kind).ReplicaLeavesRotation && replica.ReportFailure())
            {
                Log.ReplicaLeftRotation(_topologyLogger, replica.Name, _cluster, "a replay position check failed on it");
            }

            return false;
        }
    }

    /// <summary>
    /// A read of the lease's scope (and the ambient one) finished on <paramref name="replica"/>, or on the primary (null):
    /// what the scopes may have seen, for monotonic reads.
    /// </summary>
    public void ReadServed(ReadYourWritesState? lease, ReplicaEndpoint? replica)
    {
        if (!MonotonicReads)
        {
            return;
        }

        var now = _timeProvider.GetTimestamp();
        var incarnation = replica?.Incarnation ?? 0;
        lease?.History.Served(this, replica, incarnation, now);
        EfReplicaScope.CurrentConsistency?.StateFor(this).History.Served(this, replica, incarnation, now);
    }
}
