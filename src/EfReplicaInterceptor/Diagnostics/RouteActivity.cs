using System.Diagnostics;
using System.Reflection;

namespace EfReplicaInterceptor.Diagnostics;

/// <summary>
/// The library's <see cref="ActivitySource"/> and its <c>efreplica.route</c> span. While nothing listens to the source,
/// <see cref="Start"/> returns <see langword="null"/> after one check of a field and allocates nothing.
/// </summary>
internal static class RouteActivity
{
    private static readonly ActivitySource Source = new(
        EfReplicaDiagnostics.ActivitySourceName,
        typeof(RouteActivity).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion);

    /// <summary>Starts the span of one routed command, or returns null when no listener samples it.</summary>
    public static Activity? Start()
        => Source.HasListeners() ? Source.StartActivity(EfReplicaDiagnostics.RouteActivityName, ActivityKind.Internal) : null;

    /// <summary>Marks <paramref name="activity"/> failed with the exception's type (never its message, which may hold data). Returns false, for an exception filter.</summary>
    public static bool Failed(Activity? activity, Exception exception)
    {
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetStatus(ActivityStatusCode.Error);
            activity.SetTag("error.type", exception.GetType().FullName);
        }

        return false;
    }
}
