using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;
using Polly;

namespace EfReplicaInterceptor.Routing;

/// <summary>One read's journey over servers (see <see cref="ReadExecutor"/>).</summary>
internal sealed partial class ReadExecutor
{
    /// <summary>One read's journey over servers: where it runs next and why.</summary>
    private sealed class Attempt<T>(ReadExecutor executor, NpgsqlCommand source, CommandEventData eventData, LeaseState? lease, ReadOperation<T> operation, RoutingDecision decision)
        : IServerStatement<T>
    {
        private ulong _tried;

        /// <summary>The caller's token of the current run (a reader handed to EF reports cancellation with it).</summary>
        private CancellationToken _cancellationToken;

        /// <summary>The replica was chosen under a constraint: if it fails, the read goes to the primary, not to any replica.</summary>
        private bool _constrained = decision.IsConstrained;

        /// <summary>What the failure of the current run was, classified where it happened (see <see cref="Observe"/>).</summary>
        private ServerErrorKind _observed;

        /// <summary>A run of this read on the primary has passed the Long Fork wait (once per read: a primary that failed it is not asked again).</summary>
        private bool _longForkPassed;

        /// <summary>The replica whose types were reloaded for this read (<see cref="ReloadTypesAsync"/>): a type still unknown there is not reloaded for again.</summary>
        private ReplicaEndpoint? _typesReloadedFor;

        /// <summary>The replica where a reload for this read failed: its next runs there are not checked.</summary>
        private ReplicaEndpoint? _typesReloadFailedFor;

        public NpgsqlCommand Source { get; } = source;

        /// <summary>EF's identifier of the command, for events.</summary>
        public Guid CommandId => eventData.CommandId;

        public ReadOperation<T> Operation { get; } = operation;

        public ReplicaEndpoint? Target { get; private set; } = decision.Replica;

        /// <summary>The server the next run goes to.</summary>
        public WatchedServer Server => Target?.Server ?? Writable?.Server ?? executor._primary;

        /// <summary>
        /// While <see cref="Target"/> is null: the listed node that answers as the primary, through which the read for the
        /// primary runs (its own data source), or null for the primary's connection string.
        /// </summary>
        public ReplicaEndpoint? Writable { get; private set; }

        /// <summary>When the read started (<see cref="TimeProvider.GetTimestamp"/>): the read deadline bounds a wait for the topology from here.</summary>
        public long StartedAt { get; } = executor._timeProvider.GetTimestamp();

        /// <summary>The last run was for the primary and failed because its server is gone.</summary>
        public bool PrimaryGone { get; private set; }

        public RoutingReason Reason { get; private set; } = decision.Reason;

        public ServerErrorKind LastFailure { get; private set; }

        /// <summary>
        /// The run succeeded on <paramref name="server"/> (reported by the run while its connection is at hand, so that the
        /// attempt need not keep the address: it is allocated for every read).
        /// </summary>
        public void Succeeded(ServerAddress server) => executor.Succeeded(eventData, lease, Target, Reason, server);

        /// <summary>Classifies a failure of this run while its connection (if one was opened) can still be looked at.</summary>
        public void Observe(Exception exception, FailurePhase phase, NpgsqlConnection? connection)
            => _observed = FailoverErrors.Classify(exception, phase, onStandby: Target is not null, connection);

        /// <summary>
        /// Starts a run: forgets the last run's failure and, when the run goes to the primary for the first time in this read
        /// (decided so, or after its replica failed), holds it for the Long Fork wait: a scope that read on a standby first
        /// waits until the primary shows what that standby showed committed (nothing for the others). Every run of the read
        /// starts here, the executor's first one included; for a run on a replica the task is complete at once.
        /// </summary>
        public ValueTask BeginAsync(bool async, CancellationToken cancellationToken)
        {
            LastFailure = ServerErrorKind.None;
            PrimaryGone = false;
            _observed = ServerErrorKind.None;
            _cancellationToken = cancellationToken;
            if (Target is not null || _longForkPassed)
            {
                return ValueTask.CompletedTask;
            }

            _longForkPassed = true; // once per read: a primary that failed it is not asked again
            return executor._consistency.BeforePrimaryAsync(lease?.Scope, async, cancellationToken);
        }

        /// <summary>Whether the run's failure was a failover error (classified where it happened), not the caller's cancellation.</summary>
        public bool FailedOver(CancellationToken cancellationToken) => !cancellationToken.IsCancellationRequested && _observed != ServerErrorKind.None;

        /// <summary>The run failed over (<see cref="FailedOver"/>): records the failure and picks where the next run goes.</summary>
        public void RunFailed(Exception exception)
        {
            LastFailure = _observed;
            OnFailure(_observed, exception);
        }

        /// <summary>One run: <see cref="BeginAsync"/>, the read on <see cref="Server"/>, and <see cref="RunFailed"/> when it fails over.</summary>
        public async ValueTask<T> RunAsync(bool async, CancellationToken cancellationToken)
        {
            await BeginAsync(async, cancellationToken).ConfigureAwait(false);
            try
            {
                try
                {
                    return await RunOnceAsync(this, async, cancellationToken).ConfigureAwait(false);
                }
                catch (StaleTypesException stale) when (Target is not null)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    await ReloadTypesAsync(stale, async, cancellationToken).ConfigureAwait(false);
                    await BeginAsync(async, cancellationToken).ConfigureAwait(false);
                    return await RunOnceAsync(this, async, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception exception) when (FailedOver(cancellationToken))
            {
                RunFailed(exception);
                throw;
            }
        }

        public NpgsqlCommand? CreateCommand(NpgsqlConnection connection) => Clone(Source, connection);

        public Task<T> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command)
            => Operation.RunAsync(command!, TypesToCheck, TypesReloaded, CancellationToken.None);

        public T Run(NpgsqlConnection connection, NpgsqlCommand? command) => Operation.Run(command!, TypesToCheck, TypesReloaded);

        /// <summary>
        /// The replica's types, checked against the result (<see cref="ReplicaTypes"/>): on a replica, unless a reload of its
        /// types for this read failed (the run that follows is the read as it is).
        /// </summary>
        private ReplicaTypes? TypesToCheck => Target is { } replica && !ReferenceEquals(replica, _typesReloadFailedFor) ? replica.Types : null;

        private bool TypesReloaded => Target is { } replica && ReferenceEquals(replica, _typesReloadedFor);

        /// <summary>The read met a result that names a type its replica's session lacks: the types are reloaded before it runs there again.</summary>
        public async ValueTask ReloadTypesAsync(StaleTypesException stale, bool async, CancellationToken cancellationToken)
        {
            var replica = Target!;
            if (await replica.Types.ReloadAsync(replica.Server, stale, async, cancellationToken).ConfigureAwait(false))
            {
                _typesReloadedFor = replica;
            }
            else
            {
                _typesReloadFailedFor = replica;
            }
        }

        public CallHandover Succeeded(T result, OperationWatch watch, NpgsqlConnection connection)
        {
            Succeeded(new ServerAddress(connection.Host, connection.Port)); // two field reads; labelled only if telemetry asks
            var handover = Operation.ResultOwnsConnection ? CallHandover.Connection : CallHandover.None;
            if (result is WatchedReader reader)
            {
                // EF reads the rows after this returns: the watch stays on the reader until it is closed.
                reader.Watch(watch, new ReadResultSource(executor, Server, Target, CommandId, connection, _cancellationToken));
                handover |= CallHandover.Watch;
            }

            return handover;
        }

        void IServerStatement<T>.Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection) => Observe(exception, phase, connection);

        public ValueTask<T> RunInPipelineAsync(ResilienceContext context)
            => Track(context, RunAsync(async: true, context.CancellationToken));

        public T RunInPipeline(ResilienceContext context)
            => Track(context, RunAsync(async: false, context.CancellationToken)).GetAwaiter().GetResult();

        private async ValueTask<T> Track(ResilienceContext context, ValueTask<T> run)
        {
            context.Properties.Set(FailoverFailure, false);
            try
            {
                return await run.ConfigureAwait(false);
            }
            catch (Exception) when (LastFailure != ServerErrorKind.None)
            {
                context.Properties.Set(FailoverFailure, true);
                throw;
            }
        }

        /// <summary>The next run is on <paramref name="replica"/>, which resolving the read again chose (caught up with what its scopes need).</summary>
        public void ForReplica(ReplicaEndpoint replica)
        {
            Target = replica;
            Writable = null;
            Reason = RoutingReason.Read;
            _constrained = true;
        }

        /// <summary>The next run is for the primary: through <paramref name="writable"/> when not null, else the primary's connection string.</summary>
        public void ForPrimary(ReplicaEndpoint? writable)
        {
            Target = null;
            Writable = writable;
        }

        private void OnFailure(ServerErrorKind kind, Exception exception)
        {
            var failed = Target;
            if (failed is null)
            {
                var through = Writable;
                executor.PrimaryFailed(kind, exception, eventData, through);
                PrimaryGone = MeansPrimaryGone(kind);

                // Next: the node the monitor knows answers as the primary when the primary's server is gone (not the one that
                // just failed), else the primary again with a fresh connection.
                var writable = PrimaryGone ? executor._selector.OnlyWritable() : null;
                Writable = ReferenceEquals(writable, through) ? null : writable;
                return;
            }

            _tried |= 1UL << failed.Index;
            var next = executor.ReplicaFailed(failed, kind, exception, eventData, lease, _tried, constrained: _constrained);
            Target = next;
            if (next is null && Reason == RoutingReason.Read)
            {
                Reason = FailurePolicy.For(kind).ReadNext == ReadFailureNext.PrimaryAsWrite ? RoutingReason.Unrecognized : RoutingReason.ReplicaUnavailable;
            }
        }
    }
}
