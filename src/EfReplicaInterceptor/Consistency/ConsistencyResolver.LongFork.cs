using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Consistency;

/// <summary>The Long Fork wait before a command of a scope runs on the primary (see <see cref="LongForkWait"/>).</summary>
internal sealed partial class ConsistencyResolver
{
    /// <summary>
    /// Before a command of the lease's scope (and the ambient one) runs on the primary, whatever sent it there: the
    /// resolver, a transaction, a pinned session, <c>UsePrimary()</c>, a write, or a read that failed over from its replica.
    /// When the scopes read on a standby since their last check (or were restored from a token), waits until the primary
    /// shows what that standby showed committed, at most the read deadline (see <see cref="LongForkWait"/>); once checked, the
    /// next command costs nothing. No round trip and no lock for a scope with nothing to check, or with the wait switched off.
    /// </summary>
    public ValueTask BeforePrimaryAsync(ScopeState? lease, bool async, CancellationToken cancellationToken)
        => _longFork is null ? default : BeforePrimaryAsync(lease, EfReplicaScope.CurrentConsistency?.StateFor(this), async, cancellationToken);

    /// <inheritdoc cref="BeforePrimaryAsync(ScopeState?, bool, CancellationToken)"/>
    public ValueTask BeforePrimaryAsync(ScopeState? lease, ScopeState? ambient, bool async, CancellationToken cancellationToken)
        => _longFork is null || (Past(lease)?.LongForkDue != true && Past(ambient)?.LongForkDue != true)
            ? default
            : WaitForPrimaryAsync(lease, ambient, async, cancellationToken);

    private async ValueTask WaitForPrimaryAsync(ScopeState? lease, ScopeState? ambient, bool async, CancellationToken cancellationToken)
        => await _longFork!.BeforePrimaryReadAsync(Past(lease), Past(ambient), async, cancellationToken, TokenStandbyOf(lease, ambient)).ConfigureAwait(false);

    /// <summary>
    /// What the scopes' restored tokens ask of the check. A token does not say where its reads ran, so it counts as a read on
    /// a standby that showed its position: a replica known to have replayed that position shows committed at least what the
    /// token's scope can have seen and is asked in its place; with none known (or the position not known yet), the
    /// unfiltered wait. A token with no position in this cluster asks nothing.
    /// </summary>
    private TokenStandby TokenStandbyOf(ScopeState? lease, ScopeState? ambient)
    {
        var (leasePosition, ambientPosition) = (TokenPosition(lease), TokenPosition(ambient));
        if (leasePosition is null && ambientPosition is null)
        {
            return default;
        }

        var position = Math.Max(leasePosition ?? 0, ambientPosition ?? 0);
        if (position == 0)
        {
            return new(true, null);
        }

        foreach (var replica in _selector.Replicas)
        {
            if (replica.IsAdmitted && replica.KnownReplayLsn >= position)
            {
                return new(true, replica);
            }
        }

        return new(true, null);
    }

    /// <summary>
    /// The position in this cluster of the token <paramref name="state"/> was restored from, when it has not been checked for
    /// Long Fork since: null when none (no token, a malformed one, or one for other clusters only); 0 when it cannot be told yet
    /// (the cluster's system identifier is not known).
    /// </summary>
    private ulong? TokenPosition(ScopeState? state)
    {
        if (state is null || Past(state)?.TokenReadSinceLongForkCheck != true)
        {
            return null;
        }

        if (state.RestoredToken is not { } token)
        {
            // Checked by the resolver already: its position is now the scope's requirement and floor.
            var checkedPosition = Math.Max(state.RequiredLsn, Past(state)!.Floor);
            return checkedPosition == 0 ? null : checkedPosition;
        }

        if (!ConsistencyToken.TryParse(token, out var parts))
        {
            return null;
        }

        var system = _primaryPosition.SystemIdentifier;
        if (system == 0)
        {
            return 0;
        }

        foreach (var part in parts)
        {
            if (part.SystemIdentifier == system)
            {
                return part.Lsn;
            }
        }

        return null;
    }
}
