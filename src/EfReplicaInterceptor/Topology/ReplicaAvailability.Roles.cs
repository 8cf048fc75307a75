namespace EfReplicaInterceptor.Topology;

/// <summary>The roles a listed node answers in, and outages: when one begins and whether it is a flapping one.</summary>
internal sealed partial class ReplicaAvailability
{
    /// <summary>The node's last answer said it is the primary (<c>pg_is_in_recovery()</c> false); false once it is unreachable.</summary>
    public bool AnswersAsPrimary => _answersAsPrimary;

    /// <summary>The current outage began within probation of the replica's last return: it needs two calm probes to come back.</summary>
    public bool IsFlapping
    {
        get
        {
            lock (_gate)
            {
                return _flapping;
            }
        }
    }

    /// <summary>
    /// A failure (an unreachable probe, a failed read): when it is the first since the replica last answered, a new outage
    /// begins, flapping when the replica returned to the rotation less than <see cref="ProbationIntervals"/> ago.
    /// </summary>
    private void BeginOutage()
    {
        if (_failures != 0)
        {
            return; // the same outage goes on
        }

        _flapping = _returnedAt != 0 && _timeProvider.GetTimestamp() - _returnedAt < _intervalTicks * ProbationIntervals;
    }

    /// <summary>
    /// The node answers as the primary: out of the standby rotation (it would take writes' load and could not be bounded as a
    /// standby), announced once per change of role and never as an outage.
    /// </summary>
    private AvailabilityChange OnPrimaryProbe()
    {
        _calmStreak = 0;
        _admitted = false;
        Interlocked.Exchange(ref _pausedUntil, 0);
        _wasPrimary = true;
        _announced = true;
        if (_answersAsPrimary)
        {
            return AvailabilityChange.None;
        }

        _answersAsPrimary = true;
        return AvailabilityChange.NowPrimary;
    }
}
