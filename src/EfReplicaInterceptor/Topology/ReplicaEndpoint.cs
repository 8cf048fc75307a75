using System.Runtime.CompilerServices;
using EfReplicaInterceptor.Failover;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// One read replica: its data source (built once), what the monitor last measured, and whether reads may be sent to it
/// right now. Whether it is in rotation is decided by its <see cref="Availability"/> (the monitor's verdict with
/// hysteresis, the pause after failed reads, the half-open trial); the members here delegate to it. Thread-safe.
/// </summary>
internal sealed class ReplicaEndpoint : IAsyncDisposable
{
    private readonly TimeProvider _timeProvider;
    private volatile ReplayKnowledge _replay = ReplayKnowledge.None;
    private long _failedAt;
    private volatile ReplicaHealth _health = ReplicaHealth.Unknown;
    private volatile StrongBox<ServerIdentity>? _writableAs;
    private volatile WalReceiver? _walReceiver;

    public ReplicaEndpoint(int index, string name, NpgsqlDataSource dataSource, TimeProvider timeProvider, TimeSpan baseBackoff, ServerDeadlines? deadlines = null)
    {
        deadlines ??= new ServerDeadlines(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(2), timeProvider);
        Server = new WatchedServer($"replica '{name}'", dataSource, new ServerLiveness(timeProvider), deadlines);
        Index = index;
        Name = name;
        LogSuffix = $" via replica '{name}'";
        DataSource = dataSource;
        _timeProvider = timeProvider;
        Availability = new ReplicaAvailability(timeProvider, baseBackoff);
        Types = new ReplicaTypes(timeProvider);
    }

    /// <summary>What the replica's sessions know of the server's types: a read that meets one they lack reloads them.</summary>
    public ReplicaTypes Types { get; }

    /// <summary>
    /// The replica's slot, under 64 (the read path tracks tried replicas in a 64-bit mask): unique among the cluster's
    /// endpoints in use and draining, stable for the endpoint's life whatever its position in the current replica set.
    /// </summary>
    public int Index { get; }

    /// <summary>The configured name (never the connection string).</summary>
    public string Name { get; }

    /// <summary>Text appended to routing log events, built once.</summary>
    public string LogSuffix { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The replica as the library's own operations see it: its data source, signs of life and deadlines.</summary>
    public WatchedServer Server { get; }

    /// <summary>The replica's availability state: the one place that decides whether it is in rotation.</summary>
    public ReplicaAvailability Availability { get; }

    /// <summary>
    /// True when the replica is in rotation: the monitor admits it and it is not paused after failures, and it is still one
    /// of the cluster's replicas (not <see cref="IsRetired"/>).
    /// </summary>
    public bool IsAdmitted => !IsRetired && Availability.IsInRotation;

    /// <summary>
    /// True once the replica has left the cluster's topology: it takes no read from then on (a scope whose own replica it was
    /// moves as if it had left the rotation), reads already running on it finish, and its data source is disposed once they
    /// have (<see cref="RetireAsync"/>).
    /// </summary>
    public bool IsRetired => Server.Usage.IsClosed;

    /// <summary>Set when a command failed on the replica: the monitor probes it in its next round, whatever its backoff.</summary>
    public bool ProbeRequested => Availability.ProbeRequested;

    /// <summary>
    /// The highest WAL position this replica is known to have replayed (from probes and direct checks) in its current
    /// incarnation, or 0 when nothing is known since a failure (a restarted standby may come back behind).
    /// </summary>
    public ulong KnownReplayLsn => _replay is { Current: true } known ? known.Lsn : 0;

    /// <summary>
    /// The last WAL position this replica was seen to have replayed, also after a failure (0 when never seen): what the
    /// cluster's position history must keep evidence above for it (<see cref="ClusterWalHistory.TrimFor"/>).
    /// </summary>
    public ulong LastSeenReplayLsn => _replay.Lsn;

    /// <summary>
    /// Which run of the server this is: raised each time a sample shows another postmaster start time (a restart, a
    /// re-clone). A restarted standby can come back behind what it served before, so nothing known about an earlier
    /// incarnation holds for this one.
    /// </summary>
    public long Incarnation => _replay.Incarnation;

    /// <summary>
    /// Records a replayed position seen on the replica, from a query sent at <paramref name="sampledAt"/> (a timestamp of
    /// the endpoint's <see cref="TimeProvider"/>, taken before sending) to the server started at
    /// <paramref name="startedAtTicks"/>. Within one incarnation positions only move forward; a new start time begins a new
    /// incarnation at the sampled position. A sample sent before the replica's last failure does not count.
    /// </summary>
    public void ObserveReplay(ulong lsn, long startedAtTicks, long sampledAt)
    {
        while (true)
        {
            var known = _replay;
            if (sampledAt < Interlocked.Read(ref _failedAt))
            {
                return; // sent before the failure: it may describe a server that is gone
            }

            var sameRun = known.StartedAtTicks == startedAtTicks || known.StartedAtTicks == 0;
            var next = sameRun
                ? new ReplayKnowledge(Math.Max(lsn, known.Current ? known.Lsn : 0), startedAtTicks, known.Incarnation, Math.Max(sampledAt, known.SampledAt), Current: true)
                : new ReplayKnowledge(lsn, startedAtTicks, known.Incarnation + 1, sampledAt, Current: true);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _replay, next, known), known))
            {
                return;
            }
        }
    }

    /// <summary>
    /// Records a replay position the primary shows for this standby (<see cref="StandbyReplayReports"/>): what the standby
    /// reported at <paramref name="reportedAtTicks"/> (its own clock, as <see cref="DateTime.Ticks"/>), read on the primary by
    /// a query sent at <paramref name="sampledAt"/>. Counts only for the run the knowledge is about: a current knowledge (not
    /// since a failure, the capture sent after the last failure) of a run whose postmaster started before the report was sent
    /// (both times from the standby's clock; a report of an earlier run, from a walsender the primary has not closed yet, was
    /// sent before this run started). Raises the known position only, not the time it holds for: the report is a lower bound
    /// of the replay now, not an upper bound of what reads before the capture saw (<see cref="ReplayBound"/>). True when it
    /// counted (whether or not it raised the position).
    /// </summary>
    public bool ObserveReportedReplay(ulong lsn, long reportedAtTicks, long sampledAt)
    {
        while (true)
        {
            var known = _replay;
            if (!known.Current || known.StartedAtTicks == 0 || reportedAtTicks <= known.StartedAtTicks || sampledAt < Interlocked.Read(ref _failedAt))
            {
                return false;
            }

            if (lsn <= known.Lsn || ReferenceEquals(Interlocked.CompareExchange(ref _replay, known with { Lsn = lsn }, known), known))
            {
                return true;
            }
        }
    }

    /// <summary>
    /// This standby's WAL receiver as the standby said in the monitor's latest probe: the application name it gives its
    /// upstream (<see cref="Topology.WalReceiverName"/>) and the upstream it is connected to, read and replaced together;
    /// null when the name could not be told exactly (or the role may not see it).
    /// </summary>
    public WalReceiver? WalReceiver
    {
        get => _walReceiver;
        set => _walReceiver = value;
    }

    /// <summary>The application name of <see cref="WalReceiver"/>, or null.</summary>
    public string? WalReceiverName => _walReceiver?.Name;

    /// <summary>
    /// An upper bound of every position a read served by incarnation <paramref name="incarnation"/> until
    /// <paramref name="servedUntil"/> can have seen: the known position, when it was sampled after that (replay only moves
    /// forward while the server runs); null when no such sample exists.
    /// </summary>
    public ulong? ReplayBound(long incarnation, long servedUntil)
    {
        var known = _replay;
        return known.Current && known.Incarnation == incarnation && known.SampledAt >= servedUntil ? known.Lsn : null;
    }

    /// <summary>The replica's run is in doubt after a failure: what was known no longer counts until a new sample.</summary>
    private void Forget()
    {
        Interlocked.Exchange(ref _failedAt, _timeProvider.GetTimestamp());
        while (true)
        {
            var known = _replay;
            if (!known.Current || ReferenceEquals(Interlocked.CompareExchange(ref _replay, known with { Current = false }, known), known))
            {
                return;
            }
        }
    }

    /// <summary>
    /// Which server answered the monitor's latest probe as writable (not in recovery), or null while the node answers as a
    /// standby or not at all: compared with the primary's identity to tell "the primary, also listed here" from a second
    /// writable server.
    /// </summary>
    public ServerIdentity? WritableServer
    {
        get => _writableAs?.Value;
        set => _writableAs = value is { } server ? new StrongBox<ServerIdentity>(server) : null;
    }

    /// <summary>The monitor's latest measurement.</summary>
    public ReplicaHealth Health
    {
        get => _health;
        set => _health = value;
    }

    /// <summary>
    /// The replica's staleness now, from the latest measurement: the measured lag, plus the time since the measurement
    /// when the replica was behind then (it may have fallen further behind since). Null when unknown.
    /// </summary>
    public TimeSpan? CurrentLag(long now)
    {
        var health = _health;
        if (health.Lag is not { } lag)
        {
            return null;
        }

        return lag == TimeSpan.Zero ? lag : lag + _timeProvider.GetElapsedTime(health.MeasuredAt, now);
    }

    /// <summary>
    /// True when a read may be sent here now. When the pause after a failure is over, only the first caller gets
    /// <see langword="true"/> (it probes); the others keep seeing it unavailable until that probe reports.
    /// </summary>
    public bool TryAcquire() => !IsRetired && Availability.TryAcquire();

    /// <summary>Records that a command failed on this replica for a reason that says the replica is unusable.</summary>
    /// <returns>True when this failure took the replica out of rotation (it was in rotation before).</returns>
    public bool ReportFailure()
    {
        Forget();
        return Availability.ReportFailure() == AvailabilityChange.Left;
    }

    /// <summary>Records a success.</summary>
    /// <returns>True when this success brought the replica back into rotation.</returns>
    public bool ReportSuccess() => Availability.ReportSuccess() == AvailabilityChange.Rejoined;

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();

    /// <summary>
    /// Takes the replica out of the cluster: no operation starts on it from now on (one that picked it a moment ago fails
    /// over as if it were unreachable), and once the operations in flight have ended (each is bounded by its deadline) its
    /// data source is disposed. A reader already handed to EF keeps its connection until EF disposes it; the disposed data
    /// source then closes that connection instead of pooling it.
    /// </summary>
    public async Task RetireAsync()
    {
        await Server.Usage.CloseAsync().ConfigureAwait(false);
        await DataSource.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>What is known of a replica's replay: the position, the run (postmaster start time, incarnation number), when the
/// newest sample was sent, and whether it still counts (not since a failure).</summary>
internal sealed record ReplayKnowledge(ulong Lsn, long StartedAtTicks, long Incarnation, long SampledAt, bool Current)
{
    public static readonly ReplayKnowledge None = new(0, 0, 0, 0, Current: false);
}
