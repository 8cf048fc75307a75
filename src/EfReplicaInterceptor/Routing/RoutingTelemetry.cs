using System.Diagnostics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Makes each routing decision visible: the <c>efreplica.commands</c> (and fallback) counters, a debug log event, and tags on
/// EF's command activity. In shadow mode every command runs on the primary and the decision is reported as the one that
/// would have been made.
/// </summary>
internal sealed class RoutingTelemetry(string cluster, bool shadow, EfReplicaMetrics metrics, ILoggerFactory loggerFactory)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger(Log.RoutingCategory);

    public bool IsShadowMode => shadow;

    /// <summary>
    /// Reports one command: <paramref name="server"/> is where it runs (the connection's host and port), <paramref name="replica"/>
    /// the replica chosen, if any. Tags the current activity: the command's <c>efreplica.route</c> span when a listener
    /// samples it (see <see cref="RouteActivity"/>), else the application's own activity, if any.
    /// </summary>
    public void Report(CommandEventData eventData, RoutingTarget decided, RoutingReason reason, ReplicaEndpoint? replica, ServerAddress server)
    {
        var isShadow = shadow && decided == RoutingTarget.Replica;
        var actual = shadow ? RoutingTarget.Primary : decided;
        metrics.CommandRouted(cluster, actual, reason, isShadow, server);

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            var replicaSuffix = replica is null ? string.Empty : replica.LogSuffix;
            if (shadow)
            {
                Log.CommandRoutedShadow(_logger, eventData.CommandId, eventData.CommandSource.ToString(), RoutingReasons.GetName(decided), RoutingReasons.GetName(reason), cluster, replicaSuffix);
            }
            else
            {
                Log.CommandRouted(_logger, eventData.CommandId, eventData.CommandSource.ToString(), RoutingReasons.GetName(actual), RoutingReasons.GetName(reason), cluster, replicaSuffix);
            }
        }

        var activity = Activity.Current;
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(EfReplicaDiagnostics.TargetTag, RoutingReasons.GetName(actual));
            activity.SetTag(EfReplicaDiagnostics.ReasonTag, RoutingReasons.GetName(reason));
            activity.SetTag(EfReplicaDiagnostics.ServerTag, server.Label());
            activity.SetTag(EfReplicaDiagnostics.ClusterTag, cluster);
            if (replica is not null)
            {
                activity.SetTag(EfReplicaDiagnostics.ReplicaTag, replica.Name);
            }

            if (shadow)
            {
                activity.SetTag(EfReplicaDiagnostics.ShadowTag, true);
                activity.SetTag(EfReplicaDiagnostics.DecidedTargetTag, RoutingReasons.GetName(decided));
            }
        }
    }
}
