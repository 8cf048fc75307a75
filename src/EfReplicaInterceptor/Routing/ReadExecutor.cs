using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;
using Polly.Retry;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Runs a read (outside any transaction, on no pinned session) on a connection the library opens: from the decided
/// replica's data source, or from the primary's. If it fails with a failover error it is retried, boundedly: the first
/// retry at once on another replica (or on the primary, with its pool cleared), later ones through a Polly retry pipeline
/// with exponential backoff and jitter. A replica that failed is taken out of rotation (its breaker opens; the monitor
/// or a single half-open probe lets it back). The first attempt does not touch Polly, so the steady state costs nothing.
/// </summary>
internal sealed class ReadExecutor
{
    private static readonly ResiliencePropertyKey<bool> FailoverFailure = new("EfReplica.FailoverFailure");

    private readonly CommandRouter _router;
    private readonly NpgsqlDataSource _primary;
    private readonly int _maxRetries;
    private readonly ResiliencePipeline _laterRetries;
    private readonly ILogger _logger;
    private readonly string _cluster;

    public ReadExecutor(CommandRouter router, string cluster, NpgsqlDataSource primary, FailoverOptions options, TimeProvider timeProvider, ILoggerFactory loggerFactory)
    {
        _router = router;
        _cluster = cluster;
        _primary = primary;
        _maxRetries = options.MaxRetries;
        _logger = loggerFactory.CreateLogger(Log.RoutingCategory);
        var builder = new ResiliencePipelineBuilder { TimeProvider = timeProvider };
        if (options.MaxRetries >= 2)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                Name = "EfReplica.ReadRetry",
                MaxRetryAttempts = options.MaxRetries - 1, // the pipeline's own first run is the first retry, at once
                Delay = options.BaseDelay,
                MaxDelay = options.MaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = static args => ValueTask.FromResult(
                    args.Outcome.Exception is not null && args.Context.Properties.GetValue(FailoverFailure, false)),
            });
        }

        _laterRetries = builder.Build();
    }

    public T Execute<T>(NpgsqlCommand source, CommandEventData eventData, RoutingDecision decision, ReadOperation<T> operation)
        => ExecuteAsync(source, eventData, decision, operation, async: false, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Runs the read; with <paramref name="async"/> false every step runs synchronously.</summary>
    public async ValueTask<T> ExecuteAsync<T>(NpgsqlCommand source, CommandEventData eventData, RoutingDecision decision, ReadOperation<T> operation, bool async, CancellationToken cancellationToken)
    {
        var attempt = new Attempt<T>(this, source, eventData, operation, decision);
        try
        {
            return await attempt.RunAsync(async, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (attempt.LastFailure != ServerErrorKind.None && _maxRetries > 0 && !cancellationToken.IsCancellationRequested)
        {
            // Retried below: the pipeline's first run is the first retry (at once, elsewhere, or on the primary with a
            // fresh pool); its own retries back off.
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            if (async)
            {
                return await _laterRetries.ExecuteAsync(
                    static async (context, attempt) => await attempt.RunInPipelineAsync(context).ConfigureAwait(false),
                    context,
                    attempt).ConfigureAwait(false);
            }

            return _laterRetries.Execute(static (context, attempt) => attempt.RunInPipeline(context), context, attempt);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private async ValueTask<T> RunOnceAsync<T>(Attempt<T> attempt, bool async, CancellationToken cancellationToken)
    {
        var target = attempt.Target;
        var dataSource = target?.DataSource ?? _primary;
        attempt.Phase = FailurePhase.Opening;
        var connection = async ? await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : dataSource.OpenConnection();
        attempt.Phase = FailurePhase.Executing;
        var handedOver = false;
        try
        {
            var command = Clone(attempt.Source, connection);
            var result = async
                ? await attempt.Operation.RunAsync(command, cancellationToken).ConfigureAwait(false)
                : attempt.Operation.Run(command);
            handedOver = attempt.Operation.ResultOwnsConnection;
            return result;
        }
        finally
        {
            if (!handedOver)
            {
                if (async)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }
                else
                {
                    connection.Dispose();
                }
            }
        }
    }

    private static NpgsqlCommand Clone(NpgsqlCommand source, NpgsqlConnection connection)
    {
        var target = new NpgsqlCommand(source.CommandText, connection) { CommandTimeout = source.CommandTimeout };
        if (source.AllResultTypesAreUnknown)
        {
            target.AllResultTypesAreUnknown = true;
        }
        else if (source.UnknownResultTypeList is { } unknown)
        {
            target.UnknownResultTypeList = unknown;
        }

        var parameters = source.Parameters;
        for (var i = 0; i < parameters.Count; i++)
        {
            target.Parameters.Add(parameters[i].Clone());
        }

        return target;
    }

    /// <summary>One read's journey over servers: where it runs next and why.</summary>
    private sealed class Attempt<T>(ReadExecutor executor, NpgsqlCommand source, CommandEventData eventData, ReadOperation<T> operation, RoutingDecision decision)
    {
        private ulong _tried;

        public NpgsqlCommand Source { get; } = source;

        public ReadOperation<T> Operation { get; } = operation;

        public ReplicaEndpoint? Target { get; private set; } = decision.Replica;

        public RoutingReason Reason { get; private set; } = decision.Reason;

        public FailurePhase Phase { get; set; }

        public ServerErrorKind LastFailure { get; private set; }

        public async ValueTask<T> RunAsync(bool async, CancellationToken cancellationToken)
        {
            LastFailure = ServerErrorKind.None;
            try
            {
                var value = await executor.RunOnceAsync(this, async, cancellationToken).ConfigureAwait(false);
                executor._router.ReadSucceeded(eventData, Target, Reason);
                return value;
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested
                                              && FailoverErrors.Classify(exception, Phase, onStandby: Target is not null) is not ServerErrorKind.None and var kind)
            {
                LastFailure = kind;
                OnFailure(kind, exception);
                throw;
            }
        }

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

        private void OnFailure(ServerErrorKind kind, Exception exception)
        {
            var failed = Target;
            if (failed is null)
            {
                Log.PrimaryReadFailed(executor._logger, exception, executor._cluster, eventData.CommandId, FailoverErrors.GetName(kind));
                if (kind is ServerErrorKind.ConnectionLost or ServerErrorKind.Unreachable)
                {
                    executor._primary.Clear(); // stale pooled connections after a restart or failover
                }

                return; // the primary again, with a fresh connection
            }

            _tried |= 1UL << failed.Index;
            var next = executor._router.OnReplicaReadFailure(failed, kind, exception, eventData, _tried, constrained: decision.IsConstrained);
            Target = next;
            if (next is null && Reason == RoutingReason.Read)
            {
                Reason = kind == ServerErrorKind.ReadOnly ? RoutingReason.Unrecognized : RoutingReason.ReplicaUnavailable;
            }
        }
    }
}
