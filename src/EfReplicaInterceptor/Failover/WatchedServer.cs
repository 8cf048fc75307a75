using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>The library's deadlines for one cluster, from its settings.</summary>
/// <param name="Read">How long a server may stay silent while a read, a position capture or a replay check runs on it (<c>Failover:ReadDeadline</c>).</param>
/// <param name="Probe">How long a health probe may take (<c>HealthCheckTimeout</c>); also the grace a cancelled operation gets to end by itself.</param>
/// <param name="TimeProvider">The clock.</param>
internal sealed record ServerDeadlines(TimeSpan Read, TimeSpan Probe, TimeProvider TimeProvider)
{
    /// <summary>The one timer behind every deadline of the cluster (see <see cref="DeadlineTimer"/>).</summary>
    public DeadlineTimer Timer { get; } = new(TimeProvider);
}

/// <summary>
/// One server as the library's own operations see it: its data source, its signs of life, and the deadlines every
/// operation on it runs under (<see cref="OperationWatch"/>). Built once per server.
/// </summary>
internal sealed class WatchedServer(string subject, NpgsqlDataSource dataSource, ServerLiveness liveness, ServerDeadlines deadlines)
{
    /// <summary>What the server is, for messages: <c>replica 'standby1'</c>, <c>the primary</c>.</summary>
    public string Subject { get; } = subject;

    public NpgsqlDataSource DataSource { get; } = dataSource;

    public ServerLiveness Liveness { get; } = liveness;

    public ServerDeadlines Deadlines { get; } = deadlines;

    /// <summary>The library's operations in flight on the server; closed when the server leaves the cluster's topology.</summary>
    public ServerUsage Usage { get; } = new();

    /// <summary>A watch for a read-like operation: abandoned once it and the server have been silent for <see cref="SilenceFor"/>.</summary>
    public OperationWatch WatchRead(int commandTimeoutSeconds, CancellationToken cancellationToken)
        => new(Subject, Liveness, SilenceFor(commandTimeoutSeconds), Deadlines.Probe, TimeSpan.FromSeconds(commandTimeoutSeconds), Deadlines.Timer, cancellationToken, usage: Usage);

    /// <summary>
    /// How long the server may stay silent under a command with this timeout: the read deadline, but at most three quarters
    /// of the command timeout. The library must act first: when Npgsql's own timeout expires it sends PostgreSQL's cancel
    /// request from the very thread that waits for the answer, and on a hung server that request itself hangs (until the
    /// connect timeout), so a break after it would wake nobody.
    /// </summary>
    public TimeSpan SilenceFor(int commandTimeoutSeconds)
        => commandTimeoutSeconds > 0 && TimeSpan.FromSeconds(commandTimeoutSeconds * 0.75) is var share && share < Deadlines.Read ? share : Deadlines.Read;

    /// <summary>A watch for a health probe: a plain deadline (the probe is itself the sign of life).</summary>
    public OperationWatch WatchProbe(CancellationToken cancellationToken)
        => new(Subject, liveness: null, Deadlines.Probe, Deadlines.Probe, TimeSpan.Zero, Deadlines.Timer, cancellationToken, usage: Usage);
}
