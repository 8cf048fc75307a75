using System.Runtime.ExceptionServices;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Routing;

/// <summary>The wait for the topology of a read whose primary is gone (see <see cref="ReadExecutor"/>).</summary>
internal sealed partial class ReadExecutor
{
    /// <summary>
    /// The retries are spent and the primary is gone (a role change in progress: no standby took the read, and the primary's
    /// connection string reaches no primary yet): polls, with a step doubling from <see cref="MinTopologyPoll"/> (or the
    /// retries' base delay) to <see cref="MaxTopologyPoll"/>, for a listed node that answers as the primary or the primary
    /// reached again, and runs the read there; until <see cref="FailoverOptions.PrimaryWait"/> (default: the read deadline)
    /// from the read's start, then throws the last failure. Each attempt runs under the read deadline as any other.
    /// A read that read-your-writes or monotonic reads sent to the primary is resolved again first, each time: a standby
    /// that has since replayed what its scopes need (the writes' position, known before the primary went) takes it, as it
    /// would have with the primary up. A write whose position was never learned keeps the read for a primary: no standby
    /// can be shown to have it.
    /// </summary>
    private async ValueTask<T> WaitForTopologyAsync<T>(Attempt<T> attempt, RoutingDecision decision, CommandRouter resolver, ExceptionDispatchInfo failure, bool async, CancellationToken cancellationToken)
    {
        var deadline = _primaryWait ?? _primary.Deadlines.Read;
        var step = _firstTopologyPoll;
        while (true)
        {
            if (decision.CanResolveAgain
                && await ResolveAgainAsync(decision, resolver, async, cancellationToken).ConfigureAwait(false) is { } caughtUp)
            {
                attempt.ForReplica(caughtUp);
                try
                {
                    return await attempt.RunAsync(async, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception exception) when (attempt.LastFailure != ServerErrorKind.None && !cancellationToken.IsCancellationRequested)
                {
                    failure = ExceptionDispatchInfo.Capture(exception);
                }
            }

            var left = deadline - _timeProvider.GetElapsedTime(attempt.StartedAt);
            if (left <= TimeSpan.Zero)
            {
                throw ReadFailed(attempt, failure.SourceException);
            }

            var wait = step < left ? step : left;
            if (async)
            {
                await Task.Delay(wait, _timeProvider, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                Task.Delay(wait, _timeProvider, cancellationToken).GetAwaiter().GetResult();
            }

            step = step * 2 < MaxTopologyPoll ? step * 2 : MaxTopologyPoll;
            attempt.ForPrimary(_selector.OnlyWritable());
            try
            {
                return await attempt.RunAsync(async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception exception) when (attempt.PrimaryGone && !cancellationToken.IsCancellationRequested)
            {
                failure = ExceptionDispatchInfo.Capture(exception);
            }
        }
    }

    /// <summary>
    /// The typed failure of a read no server could run before the read deadline: read wording, a read event, the last
    /// server error inside. A read is never applied, so retrying it is safe.
    /// </summary>
    private EfReplicaFailoverException ReadFailed<T>(Attempt<T> attempt, Exception last)
    {
        var kind = FailoverErrors.GetName(attempt.LastFailure == ServerErrorKind.None ? ServerErrorKind.Unreachable : attempt.LastFailure);
        Log.ReadFailedOver(_logger, last, _cluster, attempt.CommandId, kind);
        return new EfReplicaFailoverException(
            FailoverOutcome.NotApplied,
            $"Failover in cluster '{_cluster}' ({kind}): the read could not run. The primary did not answer, and no standby that has what the read must see took it, " +
            "within Failover:PrimaryWait (default: the read deadline, Failover:ReadDeadline). A read changes nothing: it is safe to retry.",
            last);
    }

    /// <summary>The replica a read that was resolved to the primary may run on now (see <see cref="WaitForTopologyAsync"/>), or null.</summary>
    private static async ValueTask<ReplicaEndpoint?> ResolveAgainAsync(RoutingDecision decision, CommandRouter resolver, bool async, CancellationToken cancellationToken)
    {
        try
        {
            return (await resolver.ResolveAsync(decision.Unresolved(), primaryConnection: null, async, cancellationToken).ConfigureAwait(false)).Replica;
        }
        catch (Exception exception) when (FailoverErrors.IsFailoverOfOwnStatement(exception) && !cancellationToken.IsCancellationRequested)
        {
            return null; // a bound of the scopes' reads could not be taken: the read stays for a primary
        }
    }
}
