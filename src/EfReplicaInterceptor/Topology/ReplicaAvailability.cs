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
}

/// <summary>
/// The single owner of one replica's availability: the monitor's verdict with hysteresis, the pause after failures, the
/// half-open trial, and when the monitor should probe next. It logs nothing and does no I/O; its transitions return an
/// <see cref="AvailabilityChange"/> for the caller to log.
/// </summary>
/// <remarks>
/// <para>States and transitions (see <c>ReplicaAvailabilityTests</c>, one test each):</para>
/// <code>
/// Unknown  --healthy probe-------------------------------&gt; InRotation  (Admitted)
/// Unknown  --bad probe (first)---------------------------&gt; Unknown     (KeptOut, once)
/// InRotation --bad probe (lagging, not a standby, unreachable)--&gt; Left (Left)
/// Left     --two calm probes in a row--------------------&gt; InRotation  (Rejoined)
/// Left     --healthy probe that is not calm--------------&gt; Left        (streak reset)
/// InRotation --failed read-------------------------------&gt; Paused      (Left; probe requested)
/// Paused   --backoff over, first TryAcquire--------------&gt; HalfOpen    (that caller only)
/// HalfOpen --successful read-----------------------------&gt; InRotation  (Rejoined)
/// HalfOpen --failed read---------------------------------&gt; Paused      (next backoff step)
/// Paused/HalfOpen --healthy probe------------------------&gt; InRotation  (Rejoined)
/// </code>
/// <para>
/// Calm: reachable, a standby, and lag at most half the budget (bytes too, when a byte budget is set). A replica that has
/// never been in rotation is admitted on its first healthy probe; one that left needs two calm probes in a row.
/// </para>
/// <para>
/// One backoff, <see cref="Backoff"/>: after the n-th consecutive failure (failed reads and unreachable probes alike,
/// counted until the replica answers again) the replica waits <c>interval × 2^(n-1)</c>, capped at 8 × interval: 1, 2, 4,
/// then 8 intervals. The same schedule pauses reads after failed reads and spaces the monitor's probes of an unreachable
/// replica. Eight intervals (8 s by default) keep a dead host to one connection attempt every few seconds while a
/// replica back from a restart is in use again within seconds; a longer cap saved almost nothing and kept a recovered
/// replica out for half a minute. A failed read also asks for a probe at once, so a healthy replica is back after the
/// next monitor round whatever its pause. The half-open trial holds its claim for one interval: if its caller never
/// reports, another caller may try then.
/// </para>
/// <para>
/// Thread-safe. <see cref="IsInRotation"/> and <see cref="TryAcquire"/> are two volatile reads in steady state;
/// transitions take a lock (the half-open claim is a compare-and-swap).
/// </para>
/// </remarks>
internal sealed class ReplicaAvailability
{
    /// <summary>The backoff doubles three times: 1, 2, 4, then 8 intervals.</summary>
    public const int MaxBackoffExponent = 3;

    /// <summary>Consecutive calm probes a replica that left needs to come back.</summary>
    public const int CalmProbesToRejoin = 2;

    private readonly Lock _gate = new();
    private readonly TimeProvider _timeProvider;
    private readonly long _intervalTicks;
    private volatile bool _admitted;         // the monitor's verdict
    private long _pausedUntil;               // TimeProvider timestamp; 0 = not paused
    private volatile bool _probeRequested;
    private int _failures;                   // consecutive failed reads and unreachable probes
    private long _nextProbeAt;               // TimeProvider timestamp; 0 = every round
    private int _calmStreak;
    private bool _everAdmitted;
    private bool _announced;                 // its being in or out has been reported once

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

    /// <summary>A command failed on the replica: the monitor probes it in its next round, whatever the backoff.</summary>
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
            return wasPaused && _admitted ? AvailabilityChange.Rejoined : AvailabilityChange.None;
        }
    }

    /// <summary>
    /// For the monitor, at the start of a round: true when this replica should be probed now (<paramref name="force"/>,
    /// a failed read asked for it, or its backoff is over). Taking the probe clears the request.
    /// </summary>
    public bool TryStartProbe(bool force)
    {
        lock (_gate)
        {
            if (!force && !_probeRequested && _timeProvider.GetTimestamp() < _nextProbeAt)
            {
                return false;
            }

            _probeRequested = false;
            return true;
        }
    }

    /// <summary>The monitor's verdict from one probe. <see cref="ReplicaHealth.Problem"/> null means healthy.</summary>
    /// <param name="health">What the probe measured.</param>
    /// <param name="maxLag">The lag budget; calm is at most half of it.</param>
    /// <param name="maxLagBytes">The byte budget when set; calm is at most half of it.</param>
    public AvailabilityChange ReportProbe(ReplicaHealth health, TimeSpan maxLag, long? maxLagBytes)
    {
        lock (_gate)
        {
            ScheduleNextProbe(health.Reachable);
            return health.Problem is null ? OnHealthyProbe(IsCalm(health, maxLag, maxLagBytes)) : OnBadProbe();
        }
    }

    /// <summary>Calm: lag at most half the budget, and bytes too when a byte budget is set.</summary>
    public static bool IsCalm(ReplicaHealth health, TimeSpan maxLag, long? maxLagBytes)
        => health.Problem is null && health.Lag <= maxLag / 2 && (maxLagBytes is not { } maxBytes || health.LagBytes <= maxBytes / 2);

    private void ScheduleNextProbe(bool reachable)
    {
        if (reachable)
        {
            // The server answers: probe it every round again. A pause after failed reads stays until it is re-admitted.
            Volatile.Write(ref _failures, 0);
            _nextProbeAt = 0;
            return;
        }

        var failures = _failures + 1;
        Volatile.Write(ref _failures, failures);
        _nextProbeAt = _timeProvider.GetTimestamp() + ToTicks(Backoff(failures));
    }

    private AvailabilityChange OnBadProbe()
    {
        _calmStreak = 0;
        if (_admitted)
        {
            // A replica already paused by a failed read was announced then; say it once.
            var wasInRotation = IsInRotation;
            _admitted = false;
            _announced = true;
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
            return Interlocked.Exchange(ref _pausedUntil, 0) != 0 ? AvailabilityChange.Rejoined : AvailabilityChange.None;
        }

        _calmStreak = calm ? _calmStreak + 1 : 0;
        if (_everAdmitted && _calmStreak < CalmProbesToRejoin)
        {
            return AvailabilityChange.None; // hysteresis: a replica that left comes back only once it is clearly within budget
        }

        Interlocked.Exchange(ref _pausedUntil, 0);
        _admitted = true;
        _everAdmitted = true;
        var wasAnnounced = _announced;
        _announced = true;
        return wasAnnounced ? AvailabilityChange.Rejoined : AvailabilityChange.Admitted;
    }

    private long ToTicks(TimeSpan duration) => (long)(duration.TotalSeconds * _timeProvider.TimestampFrequency);
}
