namespace EfReplicaInterceptor.Topology;

/// <summary>The monitor's replicas: one loop per replica of the current set, started when one joins, stopped when it leaves.</summary>
internal sealed partial class ClusterMonitor
{
    /// <summary>
    /// Completed probe rounds: the turns of the server whose loop has made the fewest (a replica added later starts at the
    /// count of its arrival, so the count never goes back).
    /// </summary>
    public long Rounds
    {
        get
        {
            var rounds = _primary.Turns;
            foreach (var member in _members)
            {
                rounds = Math.Min(rounds, member.Channel.Turns);
            }

            return rounds;
        }
    }

    /// <summary>The replicas watched now (the current set, and none that left it).</summary>
    public IReadOnlyList<ReplicaEndpoint> Replicas => Array.ConvertAll(_members, static member => member.Replica);

    /// <summary>Starts the loops: the primary's, and one per replica (each once the primary has been sampled).</summary>
    public void Start()
    {
        lock (_membersGate)
        {
            if (_primaryLoop is not null)
            {
                return;
            }

            _primaryLoop = Task.Run(() => LoopAsync(_primary, PrimaryTurnAsync, _stopping.Token));
            foreach (var member in _members)
            {
                StartLoop(member);
            }
        }
    }

    /// <summary>
    /// Watches <paramref name="replica"/> from now on (a replica that joined the topology): its own loop starts at once
    /// when the monitor runs (its first probe may admit it), and its turns count from the current round.
    /// </summary>
    public void Add(ReplicaEndpoint replica)
    {
        lock (_membersGate)
        {
            ObjectDisposedException.ThrowIf(_stopping.IsCancellationRequested, this);
            var member = new ReplicaProbe(replica, Rounds);
            _members = [.. _members, member];
            if (_primaryLoop is not null)
            {
                StartLoop(member);
            }
        }
    }

    /// <summary>
    /// Stops watching <paramref name="replica"/> (it left the topology): its loop ends (a probe in progress is abandoned),
    /// and its kept connection is closed. Returns once both are done; nothing of the monitor touches the replica afterwards.
    /// </summary>
    public async Task RemoveAsync(ReplicaEndpoint replica)
    {
        ReplicaProbe? removed;
        lock (_membersGate)
        {
            removed = Array.Find(_members, member => ReferenceEquals(member.Replica, replica));
            if (removed is null)
            {
                return;
            }

            _members = Array.FindAll(_members, member => !ReferenceEquals(member, removed));
        }

        await removed.StopAsync().ConfigureAwait(false);

        // A forced round (ProbeNowAsync) that took the replica before it left may still be probing it.
        try
        {
            await _round.WaitAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            await removed.Channel.DisposeAsync().ConfigureAwait(false); // the monitor stopped meanwhile: no round runs
            return;
        }

        try
        {
            await removed.Channel.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _round.Release();
        }
    }

    private void StartLoop(ReplicaProbe member)
    {
        var token = member.Start(_stopping.Token);
        member.Loop = Task.Run(async () =>
        {
            try
            {
                await _primarySampled.Task.WaitAsync(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await LoopAsync(member.Channel, probeToken => ReplicaTurnAsync(member, probeToken), token).ConfigureAwait(false);
        }, CancellationToken.None);
    }

    /// <summary>One replica the monitor watches: its probe line and its loop.</summary>
    private sealed class ReplicaProbe(ReplicaEndpoint replica, long turns)
    {
        private CancellationTokenSource? _stop;

        public ReplicaEndpoint Replica { get; } = replica;

        public ProbeChannel Channel { get; } = new(replica.Server, turns);

        /// <summary>The replica's loop, once started.</summary>
        public Task? Loop { get; set; }

        /// <summary>The token of this replica's loop: cancelled when the monitor stops or the replica leaves.</summary>
        public CancellationToken Start(CancellationToken stopping)
        {
            _stop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            return _stop.Token;
        }

        /// <summary>Ends the loop and waits for it.</summary>
        public async Task StopAsync()
        {
            if (_stop is null)
            {
                return;
            }

            await _stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await (Loop ?? Task.CompletedTask).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            _stop.Dispose();
            _stop = null;
        }
    }

    /// <summary>Stops every loop, then closes the kept connections and the split-brain detector's data sources.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        ReplicaProbe[] members;
        Task? primaryLoop;
        lock (_membersGate)
        {
            _stopping.Cancel();
            (members, primaryLoop) = (_members, _primaryLoop);
        }

        try
        {
            await Task.WhenAll([primaryLoop ?? Task.CompletedTask, .. members.Select(static member => member.StopAsync())]).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _round.WaitAsync().ConfigureAwait(false);
        await _primary.DisposeAsync().ConfigureAwait(false);
        foreach (var member in members)
        {
            await member.Channel.DisposeAsync().ConfigureAwait(false);
        }

        await _splitBrain.DisposeAsync().ConfigureAwait(false);
        _round.Dispose();
        _primaryWake.Dispose();
        _stopping.Dispose();
    }
}
