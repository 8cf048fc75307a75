namespace EfReplicaInterceptor.Topology;

/// <summary>What a transition of <see cref="ReplicaAvailability"/> changed, so that its caller can log it.</summary>
internal enum AvailabilityChange
{
    /// <summary>Nothing worth announcing.</summary>
    None,

    /// <summary>Taken into rotation for the first time (never announced before).</summary>
    Admitted,

    /// <summary>Was in rotation; is not any more (a bad probe or a failed read).</summary>
    Left,

    /// <summary>Was out (announced as such); is in rotation again.</summary>
    Rejoined,

    /// <summary>Never admitted and found unusable: announced once.</summary>
    KeptOut,

    /// <summary>
    /// The replica answers as the primary (<c>pg_is_in_recovery()</c> false): first seen so, or promoted. It takes no standby
    /// reads while it is, and it is not an outage: in a high-availability cluster every node is listed, the primary too.
    /// </summary>
    NowPrimary,

    /// <summary>A replica that last answered as the primary is a standby now and in rotation (a switchover's old primary rebuilt).</summary>
    NowStandby,
}

/// <summary>
/// The single owner of one replica's availability: the monitor's verdict with hysteresis, the pause after failures, the
/// half-open trial, the role the node answers in, and when the monitor should probe next. It logs nothing and does no
/// I/O; its transitions return an <see cref="AvailabilityChange"/> for the caller to log.
/// </summary>
/// <remarks>
/// <para>States and transitions (see <c>ReplicaAvailabilityTests</c>, one test each):</para>
/// <code>
/// Unknown  --healthy probe-------------------------------&gt; InRotation  (Admitted)
/// Unknown  --bad probe (first)---------------------------&gt; Unknown     (KeptOut, once)
/// any      --answers as the primary----------------------&gt; Primary     (NowPrimary, once per change of role)
/// Primary  --healthy probe as a standby------------------&gt; InRotation  (NowStandby)
/// InRotation --bad probe (lagging, unreachable)----------&gt; Left        (Left)
/// Left     --two calm probes in a row--------------------&gt; InRotation  (Rejoined)
/// Left (unreachable or paused by failed reads, not flapping) --one calm probe--&gt; InRotation  (Rejoined; catching up first is fine)
/// Left     --healthy probe that is not calm--------------&gt; Left        (streak reset)
/// InRotation --failed read-------------------------------&gt; Paused      (Left; probe requested)
/// Paused   --backoff over, first TryAcquire--------------&gt; HalfOpen    (that caller only)
/// HalfOpen --successful read-----------------------------&gt; InRotation  (Rejoined)
/// HalfOpen --failed read---------------------------------&gt; Paused      (next backoff step)
/// Paused/HalfOpen --healthy probe------------------------&gt; InRotation  (Rejoined)
/// </code>
/// <para>
/// Calm: reachable, a standby, and lag at most half the budget (bytes too, when a byte budget is set). A replica that has
/// never been in rotation is admitted on its first healthy probe, and so is a node that last answered as the primary and
/// is a standby now. One that left for its lag needs two calm probes in a row.
/// </para>
/// <para>
/// Roles: any listed node may be the primary (an HA cluster lists every node, and a switchover swaps them). A node that
/// answers as the primary is out of the standby rotation without being an outage: it is announced once per change of role
/// (<see cref="AvailabilityChange.NowPrimary"/>), never as leaving or kept out, and when it answers as a standby again it
/// joins the rotation (<see cref="AvailabilityChange.NowStandby"/>). Whether two writable servers are one is the split-brain
/// detector's question, not this one's.
/// </para>
/// <para>
/// Fast re-admission without flapping. A replica out of rotation is probed every interval, whatever happened to it (a
/// probe of a server that is down costs one refused connection, what the monitor spends on a healthy one anyway), and once
/// it answers one calm probe brings it back: it is in rotation again within two probe intervals of answering (the probe
/// that found it still down may have just started). The same holds whichever way it left: a replica paused by failed reads
/// that the monitor then finds unreachable, or already restarted and catching up (lagging), comes back on one calm probe
/// too. A replica that fails again within <see cref="ProbationIntervals"/> intervals of its return is flapping: that
/// outage needs two calm probes in a row to come back, as a replica that left for its lag does, so it is back within three
/// intervals of answering. (Probes used to back off for a flapping replica, up to 8 intervals: a standby restarted twice
/// within its probation then waited that long after answering, and a scope's reads went to the primary meanwhile.) Failed
/// reads pause reads for <see cref="Backoff"/> (after the n-th consecutive failure <c>interval × 2^(n-1)</c>, capped at 8
/// × interval: 1, 2, 4, then 8 intervals); a healthy probe ends the pause, so a healthy replica is back after the next
/// monitor round whatever its pause. The half-open trial holds its claim for one interval: if its caller never reports,
/// another caller may try then.
/// </para>
/// <para>
/// Thread-safe. <see cref="IsInRotation"/> and <see cref="TryAcquire"/> are two volatile reads in steady state;
/// transitions take a lock (the half-open claim is a compare-and-swap).
/// </para>
/// </remarks>
internal sealed partial class ReplicaAvailability
{
    /// <summary>The backoff doubles three times: 1, 2, 4, then 8 intervals.</summary>
    public const int MaxBackoffExponent = 3;

    /// <summary>Consecutive calm probes a replica that left needs to come back (one left unreachable and not flapping needs one).</summary>
    public const int CalmProbesToRejoin = 2;

    /// <summary>
    /// How long, in intervals, a replica is on probation after it returned to the rotation: failing again within it makes
    /// the new outage a flapping one (two calm probes to return). The longest backoff step.
    /// </summary>
    public const int ProbationIntervals = 1 << MaxBackoffExponent;

    private readonly Lock _gate = new();
    private readonly TimeProvider _timeProvider;
    private readonly long _intervalTicks;
    private volatile bool _admitted;         // the monitor's verdict
    private long _pausedUntil;               // TimeProvider timestamp; 0 = not paused
    private volatile bool _probeRequested;
    private int _failures;                   // consecutive failed reads and unreachable probes
    private int _calmStreak;
    private bool _everAdmitted;
    private bool _announced;                 // its being in or out has been reported once
    private volatile bool _answersAsPrimary; // its last answer: not in recovery
    private bool _wasPrimary;                // answered as the primary since it was last in rotation
    private long _returnedAt;                // TimeProvider timestamp of its last return to the rotation; 0 = none
    private bool _flapping;                  // this outage began within probation of a return
    private bool _quickReturn;               // it left unreachable, not flapping: one calm probe brings it back

    public ReplicaAvailability(TimeProvider timeProvider, TimeSpan interval)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _timeProvider = timeProvider;
        Interval = interval;
        _intervalTicks = ToTicks(interval);
    }

    /// <summary>The monitor's interval, the unit of the backoff.</summary>
    public TimeSpan Interval { get; }

    /// <summary>True when reads may go here: the monitor admits the replica and it is not paused after failures.</summary>
    public bool IsInRotation => _admitted && Volatile.Read(ref _pausedUntil) == 0;

    /// <summary>The monitor's verdict alone: reachable, a standby, and within the lag budget (with hysteresis).</summary>
    public bool IsAdmittedByMonitor => _admitted;

    /// <summary>True while reads are paused after failures (including a half-open trial in progress).</summary>
    public bool IsPaused => Volatile.Read(ref _pausedUntil) != 0;

    /// <summary>A command failed on the replica and no probe has been taken since (the monitor probes every replica every round).</summary>
    public bool ProbeRequested => _probeRequested;

    /// <summary>Consecutive failures (failed reads and unreachable probes) since the replica last answered.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _failures);

    /// <summary>The wait after the <paramref name="failures"/>-th consecutive failure: interval × 2^(n-1), at most 8 intervals.</summary>
    public TimeSpan Backoff(int failures) => Interval * (1 << Math.Clamp(failures - 1, 0, MaxBackoffExponent));

    /// <summary>
    /// True when a read may be sent here now. When the pause after a failure is over, only the first caller gets
    /// <see langword="true"/> (the half-open trial); the others see the replica unavailable until that trial reports.
    /// </summary>
    public bool TryAcquire()
    {
        if (!_admitted)
        {
            return false;
        }

        var until = Volatile.Read(ref _pausedUntil);
        if (until == 0)
        {
            return true;
        }

        var now = _timeProvider.GetTimestamp();
        if (now < until)
        {
            return false;
        }

        // Half-open: claim the trial by pushing the pause forward one interval; the winner tries the replica.
        return Interlocked.CompareExchange(ref _pausedUntil, now + _intervalTicks, until) == until;
    }

    /// <summary>A command failed on the replica for a reason that says it is unusable: pause reads for the next backoff step and ask for a probe.</summary>
    /// <returns><see cref="AvailabilityChange.Left"/> when this failure took the replica out of rotation.</returns>
    public AvailabilityChange ReportFailure()
    {
        lock (_gate)
        {
            _probeRequested = true;
            var wasInRotation = IsInRotation;
            BeginOutage();
            var failures = _failures + 1;
            Volatile.Write(ref _failures, failures);
            Interlocked.Exchange(ref _pausedUntil, _timeProvider.GetTimestamp() + ToTicks(Backoff(failures)));
            return wasInRotation ? AvailabilityChange.Left : AvailabilityChange.None;
        }
    }

    /// <summary>A command succeeded on the replica: any pause ends and the failure count starts again.</summary>
    /// <returns><see cref="AvailabilityChange.Rejoined"/> when this success brought the replica back into rotation.</returns>
    public AvailabilityChange ReportSuccess()
    {
        if (Volatile.Read(ref _pausedUntil) == 0 && Volatile.Read(ref _failures) == 0)
        {
            return AvailabilityChange.None; // steady state: no lock
        }

        lock (_gate)
        {
            Volatile.Write(ref _failures, 0);
            var wasPaused = Interlocked.Exchange(ref _pausedUntil, 0) != 0;
            if (wasPaused && _admitted)
            {
                _returnedAt = _timeProvider.GetTimestamp();
                return AvailabilityChange.Rejoined;
            }

            return AvailabilityChange.None;
        }
    }

    /// <summary>For the monitor, as it probes the replica (every round): taking the probe clears a failed read's request.</summary>
    public void StartProbe() => _probeRequested = false;

    /// <summary>The monitor's verdict from one probe. <see cref="ReplicaHealth.Problem"/> null means healthy.</summary>
    /// <param name="health">What the probe measured.</param>
    /// <param name="maxLag">The lag budget; calm is at most half of it.</param>
    /// <param name="maxLagBytes">The byte budget when set; calm is at most half of it.</param>
    public AvailabilityChange ReportProbe(ReplicaHealth health, TimeSpan maxLag, long? maxLagBytes)
    {
        lock (_gate)
        {
            if (!health.Reachable)
            {
                _answersAsPrimary = false;
                BeginOutage();
                Volatile.Write(ref _failures, _failures + 1);
                return OnBadProbe(unreachable: true);
            }

            Volatile.Write(ref _failures, 0); // it answers; a pause after failed reads stays until it is re-admitted
            if (!health.InRecovery)
            {
                return OnPrimaryProbe();
            }

            _answersAsPrimary = false;
            return health.Problem is null ? OnHealthyProbe(IsCalm(health, maxLag, maxLagBytes)) : OnBadProbe(unreachable: false);
        }
    }

    /// <summary>Calm: lag at most half the budget, and bytes too when a byte budget is set.</summary>
    public static bool IsCalm(ReplicaHealth health, TimeSpan maxLag, long? maxLagBytes)
        => health.Problem is null && health.Lag <= maxLag / 2 && (maxLagBytes is not { } maxBytes || health.LagBytes <= maxBytes / 2);

    private AvailabilityChange OnBadProbe(bool unreachable)
    {
        _calmStreak = 0;
        if (_admitted)
        {
            // A replica already paused by a failed read was announced then; say it once.
            // A failure began this outage (an unreachable probe, or failed reads that paused it): it comes back on one calm
            // probe unless it is flapping. A standby restarted before the monitor saw it down is first found catching up.
            var wasInRotation = IsInRotation;
            var failed = unreachable || Volatile.Read(ref _pausedUntil) != 0;
            _admitted = false;
            _announced = true;
            _quickReturn = failed && !_flapping;
            return wasInRotation ? AvailabilityChange.Left : AvailabilityChange.None;
        }

        if (_announced)
        {
            return AvailabilityChange.None;
        }

        _announced = true;
        return AvailabilityChange.KeptOut;
    }

    private AvailabilityChange OnHealthyProbe(bool calm)
    {
        if (_admitted)
        {
            // A pause after failed reads ends as soon as the monitor finds the replica healthy.
            if (Interlocked.Exchange(ref _pausedUntil, 0) == 0)
            {
                return AvailabilityChange.None;
            }

            _returnedAt = _timeProvider.GetTimestamp();
            return AvailabilityChange.Rejoined;
        }

        _calmStreak = calm ? _calmStreak + 1 : 0;
        var needed = _wasPrimary || !_everAdmitted ? 0 : _quickReturn && !_flapping ? 1 : CalmProbesToRejoin;
        if (_calmStreak < needed)
        {
            return AvailabilityChange.None; // hysteresis: a replica that left comes back only once it is clearly within budget
        }

        Interlocked.Exchange(ref _pausedUntil, 0);
        _admitted = true;
        var wasPrimary = _wasPrimary;
        _wasPrimary = false;
        _quickReturn = false;
        _returnedAt = _everAdmitted ? _timeProvider.GetTimestamp() : 0;
        _everAdmitted = true;
        var wasAnnounced = _announced;
        _announced = true;
        return wasPrimary ? AvailabilityChange.NowStandby : wasAnnounced ? AvailabilityChange.Rejoined : AvailabilityChange.Admitted;
    }

    private long ToTicks(TimeSpan duration) => (long)(duration.TotalSeconds * _timeProvider.TimestampFrequency);
}
