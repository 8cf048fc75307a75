using System.Globalization;

namespace EfReplicaInterceptor.Testing;

/// <summary>Settings for a <see cref="PatroniCluster"/>. Every property has a default; pass null to <see cref="PatroniCluster.StartAsync"/> for all of them.</summary>
public sealed record PatroniClusterOptions
{
    /// <summary>The default <see cref="DatabaseName"/>: <c>efreplica</c> (as <see cref="PostgresReplicaSetOptions.DefaultDatabaseName"/>).</summary>
    public const string DefaultDatabaseName = PostgresReplicaSetOptions.DefaultDatabaseName;

    /// <summary>
    /// The application database created on the first leader (it reaches the replicas by streaming) and named in every member's
    /// <see cref="PatroniMember.ConnectionString"/>. Default <c>efreplica</c>.
    /// </summary>
    public string DatabaseName { get; init; } = DefaultDatabaseName;

    /// <summary>
    /// The limit of each wait: etcd to answer, the cluster to bootstrap, a switchover or failover to complete, a member to stream.
    /// Default 180 s: a bootstrap takes 6.5 to 12 s on an idle two-core machine, much longer when other builds load it.
    /// </summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(180);

    /// <summary>Patroni's <c>ttl</c>: how long the leader key lives without renewal, and so about how long an unplanned failover takes. Default 10 s.</summary>
    public TimeSpan TimeToLive { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Patroni's <c>loop_wait</c>: the pause between two runs of its HA loop. Default 1 s.</summary>
    public TimeSpan LoopWait { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Patroni's <c>retry_timeout</c> for etcd and PostgreSQL operations. Default 4 s.
    /// Patroni requires <see cref="LoopWait"/> + 2 × <see cref="RetryTimeout"/> &lt;= <see cref="TimeToLive"/>.
    /// </summary>
    public TimeSpan RetryTimeout { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>PostgreSQL's <c>max_connections</c> on every member. Default 100.</summary>
    public int MaxConnections { get; init; } = 100;

    /// <summary>Checks the settings; the message names the setting that is wrong.</summary>
    internal PatroniClusterOptions Validated()
    {
        if (string.IsNullOrWhiteSpace(DatabaseName) || DatabaseName.Length > 63 || DatabaseName.Contains('"', StringComparison.Ordinal) || DatabaseName.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{nameof(PatroniClusterOptions)}.{nameof(DatabaseName)} must be 1 to 63 characters without double quotes.", nameof(DatabaseName));
        }

        if (OperationTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(OperationTimeout), $"{nameof(PatroniClusterOptions)}.{nameof(OperationTimeout)} must be positive.");
        }

        if (WholeSeconds(TimeToLive) is null || WholeSeconds(LoopWait) is null || WholeSeconds(RetryTimeout) is null)
        {
            throw new ArgumentOutOfRangeException(
                nameof(TimeToLive),
                $"{nameof(PatroniClusterOptions)}.{nameof(TimeToLive)}, {nameof(LoopWait)} and {nameof(RetryTimeout)} must be whole, positive numbers of seconds (Patroni takes seconds).");
        }

        if (LoopWait + (2 * RetryTimeout) > TimeToLive)
        {
            throw new ArgumentOutOfRangeException(
                nameof(TimeToLive),
                $"{nameof(PatroniClusterOptions)}.{nameof(LoopWait)} + 2 × {nameof(RetryTimeout)} must not exceed {nameof(TimeToLive)} (Patroni refuses such a configuration).");
        }

        if (MaxConnections is < 10 or > 10_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConnections), $"{nameof(PatroniClusterOptions)}.{nameof(MaxConnections)} must be between 10 and 10000.");
        }

        return this;
    }

    internal static string? WholeSeconds(TimeSpan value) =>
        value > TimeSpan.Zero && value.Ticks % TimeSpan.TicksPerSecond == 0
            ? ((long)value.TotalSeconds).ToString(CultureInfo.InvariantCulture)
            : null;
}
