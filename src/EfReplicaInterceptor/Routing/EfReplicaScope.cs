namespace EfReplicaInterceptor;

/// <summary>
/// Ambient routing choices that flow with the async call (an <see cref="AsyncLocal{T}"/>), across every DbContext used inside them.
/// </summary>
public static class EfReplicaScope
{
    private static readonly AsyncLocal<PrimaryScope?> CurrentPrimaryScope = new();

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
