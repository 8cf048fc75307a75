namespace EfReplicaInterceptor;

/// <summary>
/// Ambient routing choices that flow with the async call (an <see cref="AsyncLocal{T}"/>), across every DbContext used inside them.
/// </summary>
public static class EfReplicaScope
{
    private static readonly AsyncLocal<PrimaryScope?> CurrentPrimaryScope = new();
    private static readonly AsyncLocal<EfReplicaConsistencyScope?> CurrentConsistencyScope = new();

    /// <summary>True while code runs inside <see cref="ForcePrimary"/>.</summary>
    public static bool IsPrimaryForced => CurrentPrimaryScope.Value is not null;

    /// <summary>
    /// Sends every command executed inside the returned scope to the primary, for example for one web route that must
    /// read what it just wrote. Dispose the scope to end it; scopes nest.
    /// </summary>
    /// <example><code>using (EfReplicaScope.ForcePrimary()) { await ordersPage.LoadAsync(); }</code></example>
    public static IDisposable ForcePrimary()
    {
        var scope = new PrimaryScope(CurrentPrimaryScope.Value);
        CurrentPrimaryScope.Value = scope;
        return scope;
    }

    /// <summary>The innermost ambient consistency scope, or <see langword="null"/>.</summary>
    public static EfReplicaConsistencyScope? CurrentConsistency => CurrentConsistencyScope.Value;

    /// <summary>
    /// Starts an ambient consistency scope: reads by any DbContext inside it see every write made inside it (and, with
    /// <paramref name="token"/>, the writes that token stands for), going to a replica only once it has replayed them; with
    /// <see cref="EfReplicaOptions.MonotonicReads"/> (the default) they also never return older data than an earlier read
    /// of the scope (or of the scope the token came from).
    /// A malformed or foreign token is rejected when it is first used (or ignored, by configuration:
    /// <see cref="EfReplicaOptions.InvalidTokenHandling"/>).
    /// </summary>
    /// <param name="token">A token from <see cref="EfReplicaConsistencyScope.GetTokenAsync"/>, for example carried in a
    /// cookie from the user's previous request. Default: none.</param>
    /// <example><code>
    /// using var scope = EfReplicaScope.BeginConsistency(request.Cookies["efr"]);
    /// ... // reads and writes
    /// response.Cookies.Append("efr", await scope.GetTokenAsync() ?? "");
    /// </code></example>
    public static EfReplicaConsistencyScope BeginConsistency(string? token = null)
    {
        var scope = new EfReplicaConsistencyScope(CurrentConsistencyScope.Value, token);
        CurrentConsistencyScope.Value = scope;
        return scope;
    }

    internal static void EndConsistency(EfReplicaConsistencyScope scope)
    {
        if (ReferenceEquals(CurrentConsistencyScope.Value, scope))
        {
            CurrentConsistencyScope.Value = scope.Parent;
        }
    }

    private sealed class PrimaryScope(PrimaryScope? parent) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (ReferenceEquals(CurrentPrimaryScope.Value, this))
            {
                CurrentPrimaryScope.Value = parent;
            }
        }
    }
}
