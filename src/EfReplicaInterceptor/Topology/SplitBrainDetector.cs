using EfReplicaInterceptor.Failover;
using System.Globalization;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>A server of the cluster that answered a probe as writable (not in recovery), and how the cluster knows it.</summary>
/// <param name="Label">Where it was reached: <c>primary</c>, <c>primary host 'h:p'</c>, or <c>replica 'name'</c>.</param>
/// <param name="Server">The server's own identity.</param>
internal readonly record struct WritableServer(string Label, ServerIdentity Server);

/// <summary>
/// Finds two writable primaries in one cluster: a configured replica promoted while the primary still runs, or two hosts
/// of a multi-host primary connection string that both accept writes (Npgsql then writes to whichever is listed first
/// and answers). Each host of a multi-host primary is probed on its own (a single-host connection string with the same
/// credentials); the replicas' and the primary's answers come from the monitor's own probes. Servers are told apart by
/// what they say of themselves (<see cref="ServerIdentity"/>), so two addresses of one server count once.
/// </summary>
internal sealed class SplitBrainDetector : IAsyncDisposable
{
    private readonly WatchedServer[] _hosts;

    /// <param name="primaryConnectionString">The primary's connection string; each of its hosts is probed on its own when it lists several.</param>
    /// <param name="buildDataSource">Builds a host's data source from its single-host connection string and a name (the
    /// composition root's, so that the application's data source configuration, a password provider say, applies).</param>
    /// <param name="deadlines">The cluster's deadlines: each host's probe is watched on the cluster's one deadline timer.</param>
    public SplitBrainDetector(string? primaryConnectionString, Func<string, string, NpgsqlDataSource> buildDataSource, ServerDeadlines deadlines)
    {
        _hosts = [.. HostConnectionStrings(primaryConnectionString).Select(host =>
            new WatchedServer(host.Label, buildDataSource(host.ConnectionString, host.Label), new ServerLiveness(deadlines.TimeProvider), deadlines))];
    }

    /// <summary>
    /// One single-host connection string per host of a multi-host <paramref name="connectionString"/> (same credentials and
    /// settings, no target session attributes, a small pool), labelled <c>primary host 'host:port'</c>; empty for a
    /// single host.
    /// </summary>
    public static IReadOnlyList<(string Label, string ConnectionString)> HostConnectionStrings(string? connectionString)
    {
        if (string.IsNullOrEmpty(connectionString))
        {
            return [];
        }

        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var hosts = builder.Host?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (hosts.Length < 2)
        {
            return [];
        }

        var result = new List<(string, string)>(hosts.Length);
        foreach (var entry in hosts)
        {
            var (host, port) = SplitHostPort(entry, builder.Port);
            var single = new NpgsqlConnectionStringBuilder(connectionString)
            {
                Host = host,
                Port = port,
                MaxPoolSize = 1,
                MinPoolSize = 0,
            };
            single.Remove("Target Session Attributes");
            single.Remove("Load Balance Hosts");
            result.Add(($"primary host '{host}:{port.ToString(CultureInfo.InvariantCulture)}'", single.ConnectionString));
        }

        return result;
    }

    private static (string Host, int Port) SplitHostPort(string entry, int defaultPort)
    {
        // "host", "host:port", "[::1]:port", "::1" (a bare IPv6 address has several colons and no port).
        var colon = entry.LastIndexOf(':');
        if (colon > 0 && (entry.IndexOf(':') == colon || entry[colon - 1] == ']')
            && int.TryParse(entry.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return (entry[..colon].Trim('[', ']'), port);
        }

        return (entry.Trim('[', ']'), defaultPort);
    }

    /// <summary>
    /// The <see cref="Judge"/> of one probe round: the primary's and the replicas' latest answers (the replicas of the current
    /// set that answered as writable, labelled <c>replica 'name'</c>) and each host of a multi-host primary, probed now.
    /// </summary>
    public async Task<(int Writable, string? Problem)> FindAsync(
        ServerIdentity? primary, IEnumerable<WritableServer> writableReplicas, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var writable = new List<WritableServer>();
        if (primary is { } server)
        {
            writable.Add(new WritableServer("primary", server));
        }

        writable.AddRange(writableReplicas);

        await ProbeHostsAsync(writable, timeout, cancellationToken).ConfigureAwait(false);
        var problem = Judge(writable, out var count);
        return (count, problem);
    }

    /// <summary>Probes each host of a multi-host primary; the writable ones are added to <paramref name="writable"/>. A host that does not answer is skipped.</summary>
    private async Task ProbeHostsAsync(List<WritableServer> writable, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var probes = new Task<WritableServer?>[_hosts.Length];
        for (var i = 0; i < probes.Length; i++)
        {
            probes[i] = ProbeHostAsync(_hosts[i], timeout, cancellationToken);
        }

        foreach (var found in await Task.WhenAll(probes).ConfigureAwait(false))
        {
            if (found is { } server)
            {
                writable.Add(server);
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// One host's probe, through <see cref="ServerCall"/> under a plain deadline of <paramref name="timeout"/> on the cluster's
    /// deadline timer: a hung host's connection is broken at the deadline (no token is handed to Npgsql, whose cancel
    /// request a hung host never answers), so it never delays the verdict on the others.
    /// </summary>
    private static async Task<WritableServer?> ProbeHostAsync(WatchedServer host, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            var deadlines = host.Deadlines;
            var watch = new OperationWatch(host.Subject, liveness: null, timeout, deadlines.Probe, TimeSpan.Zero, deadlines.Timer, cancellationToken);
            var (inRecovery, server) = await ServerCall.RunAsync<HostProbe, (bool InRecovery, ServerIdentity Server)>(
                host, watch, connection: null, default, async: true, cancellationToken).ConfigureAwait(false);
            return inRecovery ? null : new WritableServer(host.Subject, server);
        }
        catch (Exception)
        {
            return null; // a host that is down accepts no writes; the primary's own probe reports an unreachable primary
        }
    }

    /// <summary>The probe of one host: whether it accepts writes, and which server it is.</summary>
    private readonly struct HostProbe : IServerStatement<(bool InRecovery, ServerIdentity Server)>
    {
        public NpgsqlCommand? CreateCommand(NpgsqlConnection connection) => null; // the probe makes its own

        public Task<(bool InRecovery, ServerIdentity Server)> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command)
            => ServerQueries.ProbeHostAsync(connection, CancellationToken.None);

        public (bool InRecovery, ServerIdentity Server) Run(NpgsqlConnection connection, NpgsqlCommand? command)
            => throw new NotSupportedException("Probes run asynchronously.");

        public CallHandover Succeeded((bool InRecovery, ServerIdentity Server) result, OperationWatch watch, NpgsqlConnection connection) => CallHandover.None;

        public void Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection)
        {
        }
    }

    /// <summary>
    /// Null while at most one server accepts writes; otherwise a sentence naming every writable server, each once (the
    /// labels of one server joined), with its timeline. <paramref name="servers"/>: how many distinct servers accept writes.
    /// </summary>
    public static string? Judge(IReadOnlyList<WritableServer> writable, out int servers)
    {
        var found = writable
            .GroupBy(server => (server.Server.SystemIdentifier, server.Server.Port, server.Server.StartedAtTicks))
            .Select(group => $"{string.Join(" = ", group.Select(server => server.Label).Distinct())} (port {group.Key.Port.ToString(CultureInfo.InvariantCulture)}, timeline {group.First().Server.Timeline.ToString(CultureInfo.InvariantCulture)})")
            .ToList();
        servers = found.Count;
        return found.Count < 2
            ? null
            : $"{found.Count.ToString(CultureInfo.InvariantCulture)} servers accept writes: {string.Join("; ", found)}";
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.DataSource.DisposeAsync().ConfigureAwait(false);
        }
    }
}
