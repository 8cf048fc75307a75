using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Topology;
using Npgsql;

namespace EfReplicaInterceptor.Consistency;

/// <summary>Restored tokens: checked on first use, a position from the future lowered at the next primary sample.</summary>
internal sealed partial class ConsistencyResolver
{
    /// <summary>
    /// Checks a restored token on first use: well-formed and from this cluster (its system identifier, known from the
    /// monitor's probes, so usually no round trip). A position beyond every primary position seen so far is accepted but
    /// verified against the next primary sample (<see cref="VerifyRestoredPosition"/>): a forged token, or one from before a
    /// failover, is lowered then, so it cannot pin reads to the primary forever. A token that is malformed or names no cluster
    /// this process knows throws, or is ignored (logged) with <see cref="InvalidTokenHandling.Ignore"/>.
    /// </summary>
    private async ValueTask CheckRestoredTokenAsync(ScopeState? state, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var token = state?.TakeRestoredToken();
        if (token is null)
        {
            return;
        }

        if (!ConsistencyToken.TryParse(token, out var parts))
        {
            RejectToken("it is not a consistency token (expected 'efr1.' or 'efr2.' and base64url characters)");
            return;
        }

        var clusterSystem = _primaryPosition.SystemIdentifier;
        if (clusterSystem == 0)
        {
            (_, clusterSystem) = await CapturePrimaryAsync(primaryConnection, async, cancellationToken).ConfigureAwait(false);
        }

        var own = Array.FindIndex(parts, part => part.SystemIdentifier == clusterSystem);
        if (own < 0)
        {
            // A token for other clusters of this application (a request that used only those) asks nothing of this one.
            if (!Array.Exists(parts, part => KnownSystems.Contains(part.SystemIdentifier)))
            {
                RejectToken(parts.Length == 1
                    ? $"it was issued by another database cluster (system identifier {parts[0].SystemIdentifier}, this cluster is {clusterSystem})"
                    : $"it was issued by other database clusters (none is this cluster, {clusterSystem}, or another this process reached)");
            }

            return;
        }

        var (tokenSystem, tokenLsn) = parts[own];
        if (_primaryPosition.Latest is { } latest && tokenLsn <= latest.Lsn)
        {
            state!.Require(tokenLsn, tokenSystem);
            Past(state)?.Raise(tokenLsn); // what the token's scope saw; a future position is raised once verified
        }
        else
        {
            state!.RequireUnverified(tokenLsn, tokenSystem, _timeProvider.GetTimestamp());
        }

        void RejectToken(string why)
        {
            state!.TokenRejected = true;
            if ((state!.InvalidTokenHandling ?? _invalidTokenHandling) == InvalidTokenHandling.Throw)
            {
                throw new EfReplicaConsistencyTokenException(_cluster, why);
            }

            Log.ConsistencyTokenIgnored(_logger, _cluster, why);
        }
    }

    /// <summary>Lowers a restored position that a primary sample taken after the restore shows to be from the future.</summary>
    private void VerifyRestoredPosition(ScopeState? state)
    {
        if (state is null)
        {
            return;
        }

        var since = state.UnverifiedSince;
        if (since == 0 || _primaryPosition.Latest is not { } latest || latest.Timestamp <= since)
        {
            return;
        }

        if (state.RequiredLsn > latest.Lsn)
        {
            Log.ConsistencyTokenClamped(_logger, _cluster);
            state.Clamp(latest.Lsn);
        }
        else
        {
            state.Verified();
        }

        Past(state)?.Raise(state.RequiredLsn);
    }
}
