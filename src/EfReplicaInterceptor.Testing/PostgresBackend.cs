namespace EfReplicaInterceptor.Testing;

/// <summary>Where <see cref="PostgresReplicaSet.StartAsync"/> runs its servers.</summary>
public enum PostgresBackend
{
    /// <summary>
    /// Local PostgreSQL server programs (<see cref="PostgresBinaries"/>), as processes of this machine on loopback
    /// ports; as an unprivileged user when this process is root. Needs no Docker.
    /// </summary>
    Local,

    /// <summary>
    /// One Docker container per server, made with Testcontainers.PostgreSql from
    /// <see cref="PostgresReplicaSetOptions.ContainerImage"/>. The servers reach each other over a Docker network of
    /// the set's own; the application reaches each one only through a port published on 127.0.0.1. Adds the faults
    /// only containers allow: <see cref="PostgresServer.PauseContainerAsync"/>, <see cref="PostgresServer.KillAsync"/>,
    /// <see cref="PostgresServer.DisconnectFromServersAsync"/> and <see cref="PostgresServer.DisconnectFromApplicationAsync"/>.
    /// </summary>
    Containers,
}
