using System.Collections.ObjectModel;

namespace EfReplicaInterceptor.Testing;

/// <summary>
/// Settings for <see cref="PostgresReplicaSet.StartAsync"/>. The set takes a copy when it starts,
/// so changing an options object afterwards does not affect running sets.
/// </summary>
public sealed class PostgresReplicaSetOptions
{
    /// <summary>The default <see cref="DatabaseName"/>: <c>efreplica</c>.</summary>
    public const string DefaultDatabaseName = "efreplica";

    /// <summary>The default <see cref="MaxConnections"/>: 200.</summary>
    public const int DefaultMaxConnections = 200;

    /// <summary>
    /// The application database created on the primary (and so present on every standby), named in
    /// every <see cref="PostgresServer.ConnectionString"/>. Default <c>efreplica</c>. Ignored for
    /// external servers, whose connection strings name their database.
    /// </summary>
    public string DatabaseName { get; init; } = DefaultDatabaseName;

    /// <summary>
    /// Which database cluster the set's primary is a copy of. Sets started with the same value share one system identifier,
    /// as copies of one cluster do; sets with different values have different ones, as separate database clusters do (an
    /// application with two named clusters whose consistency token must tell them apart). Each value's data directory
    /// template is built once per machine (an <c>initdb</c>) and copied after that. Default 0; at least 0. Ignored for
    /// external servers and containers.
    /// </summary>
    public int SystemIdentifierVariant { get; init; }

    /// <summary>
    /// <c>max_connections</c> of every server (a hot standby needs at least the primary's value, so
    /// all servers get the same). Default 200; at least 10.
    /// </summary>
    public int MaxConnections { get; init; } = DefaultMaxConnections;

    /// <summary>
    /// Lines added to the configuration of every server after the harness's own settings, so they
    /// override them; for example <c>log_statement = 'all'</c>. Default: none. Settings changed later
    /// with <c>ALTER SYSTEM</c> (see <see cref="PostgresServer.SetRecoveryMinApplyDelayAsync"/>) win
    /// over these.
    /// </summary>
    public Collection<string> ExtraConfiguration { get; } = [];

    /// <summary>
    /// The limit for each server operation: creating a server, starting, stopping, promoting and
    /// waiting for a standby to stream. Default 60 seconds.
    /// </summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Where the servers run: local PostgreSQL programs or Docker containers. Default null: the environment variable
    /// <c>EFREPLICA_TEST_BACKEND</c> decides (<c>containers</c> or <c>local</c>), and without it the local backend.
    /// </summary>
    public PostgresBackend? Backend { get; init; }

    /// <summary>
    /// The image of the container backend. Default null: the environment variable <c>EFREPLICA_TEST_IMAGE</c>, and
    /// without it <c>efreplica/postgres:15</c> (built by <c>build/postgres-image.sh</c>). The official images
    /// <c>postgres:13</c> to <c>postgres:17</c> work too where a registry is reachable.
    /// </summary>
    public string? ContainerImage { get; init; }

    /// <summary>
    /// The default limit of <see cref="PostgresReplicaSet.WaitForReplayAsync"/> when no timeout is
    /// passed to it. Default 30 seconds.
    /// </summary>
    public TimeSpan ReplayTimeout { get; init; } = TimeSpan.FromSeconds(30);

    internal PostgresReplicaSetOptions Validated()
    {
        if (string.IsNullOrWhiteSpace(DatabaseName) || DatabaseName.Length > 63 || DatabaseName.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException(
                $"{nameof(PostgresReplicaSetOptions)}.{nameof(DatabaseName)} must be 1 to 63 characters; got '{DatabaseName}'.",
                nameof(DatabaseName));
        }

        if (SystemIdentifierVariant < 0)
        {
            throw new ArgumentOutOfRangeException(
                nameof(SystemIdentifierVariant),
                $"{nameof(PostgresReplicaSetOptions)}.{nameof(SystemIdentifierVariant)} must be at least 0.");
        }

        if (MaxConnections < 10)
        {
            throw new ArgumentOutOfRangeException(
                nameof(MaxConnections),
                MaxConnections,
                $"{nameof(PostgresReplicaSetOptions)}.{nameof(MaxConnections)} must be at least 10.");
        }

        if (OperationTimeout <= TimeSpan.Zero || ReplayTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(
                nameof(OperationTimeout),
                $"{nameof(PostgresReplicaSetOptions)}.{nameof(OperationTimeout)} and {nameof(ReplayTimeout)} must be positive.");
        }

        foreach (var line in ExtraConfiguration)
        {
            if (line is null || line.Contains('\n', StringComparison.Ordinal) || line.Contains('\r', StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"{nameof(PostgresReplicaSetOptions)}.{nameof(ExtraConfiguration)} holds one setting per entry, without line breaks; got '{line}'.",
                    nameof(ExtraConfiguration));
            }
        }

        var backend = Backend ?? BackendFromEnvironment();
        var image = ContainerImage ?? Environment.GetEnvironmentVariable(PostgresReplicaSet.ImageEnvironmentVariable);
        var copy = new PostgresReplicaSetOptions
        {
            Backend = backend,
            ContainerImage = string.IsNullOrWhiteSpace(image) ? PostgresReplicaSet.DefaultContainerImage : image.Trim(),
            DatabaseName = DatabaseName,
            MaxConnections = MaxConnections,
            SystemIdentifierVariant = SystemIdentifierVariant,
            OperationTimeout = OperationTimeout,
            ReplayTimeout = ReplayTimeout,
        };
        foreach (var line in ExtraConfiguration)
        {
            copy.ExtraConfiguration.Add(line);
        }

        return copy;
    }

    private static PostgresBackend BackendFromEnvironment()
    {
        var value = Environment.GetEnvironmentVariable(PostgresReplicaSet.BackendEnvironmentVariable)?.Trim();
        return value?.ToUpperInvariant() switch
        {
            null or "" or "LOCAL" => PostgresBackend.Local,
            "CONTAINERS" or "CONTAINER" or "DOCKER" => PostgresBackend.Containers,
            _ => throw new ArgumentException(
                $"{PostgresReplicaSet.BackendEnvironmentVariable}='{value}' is not a backend; use 'local' (PostgreSQL programs of this machine) "
                + "or 'containers' (Docker)."),
        };
    }
}
