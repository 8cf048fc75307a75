using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Consistency;

/// <summary>The server round trips of the Long Fork wait (the real ones are <see cref="LongForkRoundTrips"/>).</summary>
internal interface ILongForkRoundTrips
{
    /// <summary>On the primary: the transactions its new snapshots may not show yet.</summary>
    ValueTask<PrimaryTransactions> ReadPrimaryAsync(bool async, CancellationToken cancellationToken);

    /// <summary>On <paramref name="standby"/>: which of <paramref name="primary"/>'s transactions it shows committed.</summary>
    ValueTask<long[]> CommittedOnStandbyAsync(ReplicaEndpoint standby, PrimaryTransactions primary, bool async, CancellationToken cancellationToken);

    /// <summary>On the primary: how many of <paramref name="xids"/> its new snapshots do not show yet.</summary>
    ValueTask<int> InvisibleOnPrimaryAsync(long[] xids, bool async, CancellationToken cancellationToken);

    /// <summary>On the primary: the transactions still running whose xids are at or above <paramref name="xmax"/> (a snapshot's xmax).</summary>
    ValueTask<long[]> RunningOnPrimaryAsync(long xmax, bool async, CancellationToken cancellationToken);
}

/// <summary>The Long Fork wait's statements on the cluster's servers, each under the read deadline's watch.</summary>
internal sealed class LongForkRoundTrips(WatchedServer primary) : ILongForkRoundTrips
{
    public ValueTask<PrimaryTransactions> ReadPrimaryAsync(bool async, CancellationToken cancellationToken)
        => ServerQueries.ReadPrimaryTransactionsAsync(primary, async, cancellationToken);

    public ValueTask<long[]> CommittedOnStandbyAsync(ReplicaEndpoint standby, PrimaryTransactions primary, bool async, CancellationToken cancellationToken)
        => ServerQueries.ReadCommittedOnStandbyAsync(standby.Server, primary, async, cancellationToken);

    public ValueTask<int> InvisibleOnPrimaryAsync(long[] xids, bool async, CancellationToken cancellationToken)
        => ServerQueries.CountInvisibleOnPrimaryAsync(primary, xids, async, cancellationToken);

    public ValueTask<long[]> RunningOnPrimaryAsync(long xmax, bool async, CancellationToken cancellationToken)
        => ServerQueries.ReadRunningOnPrimaryAsync(primary, xmax, async, cancellationToken);
}

/// <summary>What one Long Fork check did.</summary>
internal enum LongForkOutcome
{
    /// <summary>The scopes read on no replica since their last check: nothing asked.</summary>
    NotNeeded,

    /// <summary>The primary shows everything the standby showed committed (usually: nothing was committing).</summary>
    NothingToWaitFor,

    /// <summary>The primary did not show some of them yet; the read waited until it did.</summary>
    Waited,

    /// <summary>The read deadline passed before the primary showed them all; the read goes on.</summary>
    DeadlineExpired,

    /// <summary>A server could not be asked (the standby left, or a failover error); the read goes on unchecked.</summary>
    Unverified,
}

/// <summary>Which transactions a Long Fork check waited for (the <c>efreplica.long_fork.transactions</c> tag of its counter).</summary>
internal enum LongForkBasis
{
    /// <summary>None: nothing was asked, or the primary could not be.</summary>
    None,

    /// <summary>Those the scope's standby shows committed.</summary>
    Standby,

    /// <summary>Those the primary has commit records of (<c>track_commit_timestamp = on</c>): the standby could not be asked.</summary>
    CommitTimestamps,

    /// <summary>
    /// Every transaction the primary's snapshot does not show (its xip list and those running from its xmax on): the standby
    /// could not be asked (it failed, left, or is unknown, as for a restored token) and the primary has no commit timestamps.
    /// </summary>
    Unfiltered,
}

/// <summary>One Long Fork check: its outcome, its round trips, how long it waited and which transactions it waited for.</summary>
internal readonly record struct LongForkCheck(LongForkOutcome Outcome, int RoundTrips, TimeSpan Waited, LongForkBasis Basis = LongForkBasis.None);

/// <summary>
/// What a scope restored from a consistency token asks of a Long Fork check (the token does not say where its reads ran):
/// nothing (<see cref="Needed"/> false: the token has no position in this cluster), or a check as if it had read on
/// <see cref="Standby"/>, a replica known to have replayed the token's position (so it shows committed at least what the
/// token's scope can have seen), or, when none is known (null), the unfiltered wait.
/// </summary>
internal readonly record struct TokenStandby(bool Needed, ReplicaEndpoint? Standby);

/// <summary>
/// The Long Fork wait (<see cref="EfReplicaOptions.LongForkWait"/>): before a scope that read on a standby reads on the
/// primary, the primary must show every transaction the standby showed committed. PostgreSQL makes a commit visible on the
/// primary only when its session leaves the process array, after the commit record is flushed and shipped (and, under
/// synchronous replication, after the synchronous standby acknowledged it), so a standby can show a commit the primary's new
/// snapshots do not. Steps: on the primary, the transactions its snapshot does not show (its xip list and everything from its
/// xmax on); on the scope's standby, those of them it shows committed (<c>pg_xact_status</c>: 'committed' only once replay
/// dropped the xid from its running list, which is when its snapshots show it); on the primary, poll until its snapshots
/// show them all, bounded by the read deadline. With <c>track_commit_timestamp = on</c> the primary's first answer already
/// holds only committed transactions: when there are none (the usual case) that one round trip is the whole check, and
/// the standby is asked only when there are some. A standby that cannot be asked (paused after a failure, gone, not
/// answering, or unknown: a restored token) leaves, with commit timestamps, the primary's committed transactions, and
/// without them every transaction the primary's snapshot does not show (its xip list, and those running from its xmax on,
/// one more round trip): the unfiltered wait, which can last the read deadline when a long transaction is open on the
/// primary. Holds no per-call state.
/// </summary>
internal sealed class LongForkWait(string cluster, ILongForkRoundTrips roundTrips, TimeSpan deadline, EfReplicaMetrics metrics, ILogger logger, TimeProvider timeProvider)
{
    /// <summary>The cluster's wait, or null when it is switched off or scopes keep no history (monotonic reads off, shadow mode).</summary>
    public static LongForkWait? For(string cluster, EfReplicaOptions options, WatchedServer primary, EfReplicaMetrics metrics, ILoggerFactory loggerFactory, TimeProvider timeProvider)
        => options.LongForkWait && options.MonotonicReads && !options.ShadowMode
            ? new LongForkWait(cluster, new LongForkRoundTrips(primary), primary.Deadlines.Read, metrics, loggerFactory.CreateLogger(Log.RoutingCategory), timeProvider)
            : null;

    private static readonly TimeSpan FirstPoll = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan LongestPoll = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Called before a command of the scopes runs on the primary: when either read on a replica since its last check (or
    /// was restored from a token, as <paramref name="token"/> says), waits until the primary shows what that replica showed
    /// committed (at most the read deadline). Never throws for a server's failure: the command goes on and meets the failure
    /// itself.
    /// </summary>
    public async ValueTask<LongForkCheck> BeforePrimaryReadAsync(ReadHistory? lease, ReadHistory? ambient, bool async, CancellationToken cancellationToken, TokenStandby token = default)
    {
        var (leaseStandby, ambientStandby) = (lease?.StandbyReadSinceLongForkCheck, ambient?.StandbyReadSinceLongForkCheck);
        var fromToken = (lease?.TokenReadSinceLongForkCheck == true || ambient?.TokenReadSinceLongForkCheck == true) && token.Needed;
        if (leaseStandby is null && ambientStandby is null && !fromToken)
        {
            lease?.TokenChecked(); // a token with nothing for this cluster asks nothing of it
            ambient?.TokenChecked();
            return new(LongForkOutcome.NotNeeded, 0, TimeSpan.Zero);
        }

        var standbys = new List<ReplicaEndpoint?>(3); // null: a standby that cannot be named (a token's)
        foreach (var standby in (ReadOnlySpan<ReplicaEndpoint?>)[leaseStandby, ambientStandby])
        {
            if (standby is not null && !standbys.Contains(standby))
            {
                standbys.Add(standby);
            }
        }

        if (fromToken && !standbys.Contains(token.Standby))
        {
            standbys.Add(token.Standby);
        }

        var started = timeProvider.GetTimestamp();
        var check = await CheckAsync(standbys, started, async, cancellationToken).ConfigureAwait(false);
        if (check.Outcome != LongForkOutcome.Unverified)
        {
            lease?.LongForkChecked(started);
            ambient?.LongForkChecked(started);
        }

        metrics.LongForkChecked(cluster, check.RoundTrips, check.Outcome is LongForkOutcome.Waited or LongForkOutcome.DeadlineExpired ? check.Waited : null, check.Outcome == LongForkOutcome.DeadlineExpired, BasisName(check.Basis));
        return check;
    }

    private static string BasisName(LongForkBasis basis) => basis switch
    {
        LongForkBasis.Standby => "standby",
        LongForkBasis.CommitTimestamps => "commit_timestamps",
        LongForkBasis.Unfiltered => "unfiltered",
        _ => "none",
    };

    /// <summary>A standby the check may ask: named, still one of the cluster's, and not paused after a failure (a read just failed there: asking it could hang for the read deadline).</summary>
    private static bool CanAsk(ReplicaEndpoint? standby) => standby is { IsRetired: false, Availability.IsPaused: false };

    private async ValueTask<long[]?> AskStandbyAsync(ReplicaEndpoint standby, PrimaryTransactions primary, bool async, CancellationToken cancellationToken)
    {
        try
        {
            return await roundTrips.CommittedOnStandbyAsync(standby, primary, async, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (IsServerFailure(exception) && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    private static bool IsServerFailure(Exception exception)
        => exception is System.Data.Common.DbException or TimeoutException || FailoverErrors.IsFailoverOfOwnStatement(exception);

    private async ValueTask<LongForkCheck> CheckAsync(List<ReplicaEndpoint?> standbys, long started, bool async, CancellationToken cancellationToken)
    {
        var trips = 0;
        try
        {
            trips++;
            var primary = await roundTrips.ReadPrimaryAsync(async, cancellationToken).ConfigureAwait(false);
            if (primary.Committed is { Length: 0 })
            {
                return new(LongForkOutcome.NothingToWaitFor, trips, TimeSpan.Zero, LongForkBasis.CommitTimestamps);
            }

            // The standbys' view narrows the set; with commit timestamps it is already exact, so a standby that cannot be
            // asked leaves it as it is, and without them every transaction the primary's snapshot does not show is waited for.
            HashSet<long>? shown = [];
            foreach (var standby in standbys)
            {
                var committed = CanAsk(standby) ? await AskStandbyAsync(standby!, primary, async, cancellationToken).ConfigureAwait(false) : null;
                trips += CanAsk(standby) ? 1 : 0;
                if (committed is null)
                {
                    // The standby left, failed or does not answer (the usual reason the scope moves to the primary), or is unknown.
                    shown = null;
                    break;
                }

                shown.UnionWith(committed);
            }

            var (waitFor, basis) = (shown, primary.Committed) switch
            {
                ({ } seen, _) => ([.. seen], LongForkBasis.Standby),
                (null, { } committed) => (committed, LongForkBasis.CommitTimestamps),
                _ => (await UnfilteredAsync(primary, async, cancellationToken).ConfigureAwait(false), LongForkBasis.Unfiltered),
            };
            trips += basis == LongForkBasis.Unfiltered ? 1 : 0;
            if (waitFor.Length == 0)
            {
                return new(LongForkOutcome.NothingToWaitFor, trips, TimeSpan.Zero, basis);
            }

            var poll = FirstPoll;
            while (true)
            {
                trips++;
                var invisible = await roundTrips.InvisibleOnPrimaryAsync(waitFor, async, cancellationToken).ConfigureAwait(false);
                var waited = timeProvider.GetElapsedTime(started);
                if (invisible == 0)
                {
                    return new(LongForkOutcome.Waited, trips, waited, basis);
                }

                if (waited >= deadline)
                {
                    Log.LongForkWaitExpired(logger, cluster, invisible);
                    return new(LongForkOutcome.DeadlineExpired, trips, waited, basis);
                }

                var pause = poll < deadline - waited ? poll : deadline - waited;
                if (async)
                {
                    await Task.Delay(pause, timeProvider, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    Task.Delay(pause, timeProvider, cancellationToken).GetAwaiter().GetResult(); // the cluster's clock, not Thread.Sleep
                }

                poll = poll * 2 < LongestPoll ? poll * 2 : LongestPoll;
            }
        }
        catch (Exception exception) when (IsServerFailure(exception) && !cancellationToken.IsCancellationRequested)
        {
            // A server failed or did not answer within the read deadline: the read goes on (and meets a primary's failure itself).
            return new(LongForkOutcome.Unverified, trips, timeProvider.GetElapsedTime(started));
        }
    }

    /// <summary>
    /// Every transaction <paramref name="primary"/>'s snapshot does not show: its xip list and those running from its xmax on
    /// (asked now: one that ended in between is visible already). Logged, since it can wait on transactions the scope never saw.
    /// </summary>
    private async ValueTask<long[]> UnfilteredAsync(PrimaryTransactions primary, bool async, CancellationToken cancellationToken)
    {
        var running = await roundTrips.RunningOnPrimaryAsync(primary.Xmax, async, cancellationToken).ConfigureAwait(false);
        long[] all = [.. primary.InProgress.Union(running)];
        Log.LongForkUnfiltered(logger, cluster, all.Length);
        return all;
    }
}
