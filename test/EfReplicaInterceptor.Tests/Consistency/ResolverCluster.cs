using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// A cluster for the <see cref="ConsistencyResolver"/> without a server: two replicas in rotation that have replayed 1,000
/// (known from a sample), the primary at <see cref="PrimaryLsn"/>, every round trip answered by <see cref="RoundTrips"/>,
/// the clock a <see cref="FakeTimeProvider"/>. Nothing is ever opened (the data source points at port 1).
/// </summary>
internal sealed class ResolverCluster : IDisposable
{
    public const long Run = 1_000;

    /// <summary>Where the captures reach the primary, unless a test says otherwise; the standbys' receivers stream from it.</summary>
    public static readonly TcpAddress PrimaryAddress = TcpAddress.Parse("10.0.0.5", 5432)!.Value;
    public const ulong System = 7;
    public static readonly TimeSpan Budget = TimeSpan.FromSeconds(10);

    /// <summary>The read deadline that bounds the Long Fork wait (when the cluster has one).</summary>
    public static readonly TimeSpan LongForkDeadline = TimeSpan.FromSeconds(3);

    private readonly NpgsqlDataSource _dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
    private readonly EfReplicaMetrics _metrics = new();

    public ResolverCluster(bool monotonicReads = true, TimeSpan maxWait = default, InvalidTokenHandling invalidTokens = InvalidTokenHandling.Throw, FakeLongForkRoundTrips? longFork = null)
    {
        Replicas = [new ReplicaEndpoint(0, "r0", _dataSource, Time, TimeSpan.FromSeconds(1)), new ReplicaEndpoint(1, "r1", _dataSource, Time, TimeSpan.FromSeconds(1))];
        foreach (var replica in Replicas)
        {
            Healthy(replica, replay: 1_000);
        }

        var selector = Selector = new ReplicaSelector(Replicas, LoadBalancing.RoundRobin, [1, 1], Time);
        var options = new EfReplicaOptions
        {
            Primary = "Host=127.0.0.1;Port=1",
            MonotonicReads = monotonicReads,
            ReadYourWritesMaxWait = maxWait,
            InvalidTokenHandling = invalidTokens,
        };
        var wait = longFork is null ? null : new LongForkWait("c", longFork, LongForkDeadline, _metrics, NullLogger.Instance, Time);
        Resolver = new ConsistencyResolver("c", RoundTrips, Position, selector, options, _metrics, NullLoggerFactory.Instance, Time, wait);
    }

    public FakeTimeProvider Time { get; } = new();

    public FakeRoundTrips RoundTrips { get; } = new();

    public PrimaryPosition Position { get; } = new();

    public ReplicaEndpoint[] Replicas { get; }

    public ConsistencyResolver Resolver { get; }

    public ReplicaSelector Selector { get; }

    public EfReplicaMetrics Metrics => _metrics;

    /// <summary>The primary's position, as the next capture answers it.</summary>
    public ulong PrimaryLsn
    {
        get => RoundTrips.PrimaryLsn;
        set => RoundTrips.PrimaryLsn = value;
    }

    /// <summary>A scope whose own replica is <paramref name="onReplica"/> (no read recorded yet).</summary>
    public ScopeState Scope(int onReplica)
    {
        var state = new ScopeState();
        state.Reads.Stick(Replicas[onReplica], Replicas[onReplica].Incarnation);
        return state;
    }

    /// <summary>A scope that wrote (its position not captured yet).</summary>
    public ScopeState Wrote(ScopeState? state = null)
    {
        state ??= new ScopeState();
        state.MarkWrite(Time.GetTimestamp());
        return state;
    }

    /// <summary>A read of <paramref name="state"/> finished on <paramref name="replica"/> (the primary: null) now.</summary>
    public void Served(ScopeState state, ReplicaEndpoint? replica)
    {
        Time.Advance(TimeSpan.FromMilliseconds(1));
        state.Reads.Served(replica, replica?.Incarnation ?? 0, Time.GetTimestamp());
        Time.Advance(TimeSpan.FromMilliseconds(1));
    }

    /// <summary>The monitor sampled <paramref name="replica"/> now (a query sent now).</summary>
    public void Sampled(ReplicaEndpoint replica, ulong replay, long run = Run) => replica.ObserveReplay(replay, run, Time.GetTimestamp());

    /// <summary>The monitor sampled the primary now.</summary>
    public void PrimarySampled(ulong lsn) => Position.Record(Time.GetTimestamp(), lsn, System, sentAt: Time.GetTimestamp());

    public ValueTask<ConsistencyChoice> ResolveAsync(ScopeState? lease, ScopeState? ambient = null, bool readYourWrites = false, ReplicaRequirement? requirement = null)
        => Resolver.ResolveAsync(lease, ambient, requirement ?? ReplicaRequirement.Any, readYourWrites, primaryConnection: null, async: true, CancellationToken.None);

    public void Healthy(ReplicaEndpoint replica, ulong replay)
    {
        var health = new ReplicaHealth { Reachable = true, InRecovery = true, Lag = TimeSpan.Zero, LagBytes = 0, ReplayLsn = replay, MeasuredAt = Time.GetTimestamp() };
        replica.Health = health;
        replica.Availability.ReportProbe(health, Budget, maxLagBytes: null);
        replica.ObserveReplay(replay, Run, Time.GetTimestamp());
    }

    public void Dispose()
    {
        _dataSource.Dispose();
        _metrics.Dispose();
    }
}

/// <summary>The server round trips, answered from fields, counted; a replica's answer by its name.</summary>
internal sealed class FakeRoundTrips : IConsistencyRoundTrips
{
    public ulong PrimaryLsn { get; set; } = 2_000;

    public ulong PrimarySystem { get; set; } = ResolverCluster.System;

    /// <summary>Thrown by the next captures instead of answering (the primary is down).</summary>
    public Exception? PrimaryFails { get; set; }

    /// <summary>What each replica answers: its replayed position (null: not in recovery) and its run; missing: the replica fails.</summary>
    public Dictionary<string, (ulong? Lsn, long Run)> Replays { get; } = [];

    /// <summary>The primary's view of its standbys' replay, as the next captures answer it (null: none).</summary>
    public StandbyReplay[]? Standbys { get; set; }

    /// <summary>The address the next captures say they reached the primary at (null: over a unix socket).</summary>
    public TcpAddress? PrimaryAddress { get; set; } = ResolverCluster.PrimaryAddress;

    public int Captures { get; private set; }

    /// <summary>The connections the captures were asked to run on (null: one of the pool's).</summary>
    public List<NpgsqlConnection?> CapturedOn { get; } = [];

    public List<string> ReplayChecks { get; } = [];

    public ValueTask<PrimaryCapture> CapturePrimaryPositionAsync(NpgsqlConnection? onConnection, bool async, CancellationToken cancellationToken)
    {
        Captures++;
        CapturedOn.Add(onConnection);
        return PrimaryFails is { } failure ? ValueTask.FromException<PrimaryCapture>(failure) : ValueTask.FromResult(new PrimaryCapture(PrimaryLsn, PrimarySystem, Standbys, PrimaryAddress));
    }

    public ValueTask<(ulong? Lsn, long StartedAtTicks)> ReadReplayPositionAsync(ReplicaEndpoint replica, bool async, CancellationToken cancellationToken)
    {
        ReplayChecks.Add(replica.Name);
        return Replays.TryGetValue(replica.Name, out var answer)
            ? ValueTask.FromResult(answer)
            : ValueTask.FromException<(ulong?, long)>(new NpgsqlException("refused (a fake: the replica is down)"));
    }
}
