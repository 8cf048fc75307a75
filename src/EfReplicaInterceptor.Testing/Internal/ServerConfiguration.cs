using System.Globalization;
using System.Text;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// The harness's settings for one server, kept in <c>efreplica.conf</c> in the data directory
/// (included from <c>postgresql.conf</c>) so that every server — including a standby whose data
/// directory pg_basebackup copied from the primary — gets its own port, socket folder and name.
/// </summary>
internal static class ServerConfiguration
{
    public const string FileName = "efreplica.conf";
    public const string LogFileName = "server.log";
    public const string IncludeLine = "include_if_exists = 'efreplica.conf'";
    public const string UserName = "efreplica";

    /// <summary>A fixed password for the test superuser; never logged or printed by the harness.</summary>
    public const string Password = "efreplica-test-password";

    /// <summary>
    /// pg_hba.conf: unix-socket connections (the harness's own) are trusted, and so are replication connections from
    /// 127.0.0.1 (the standbys stream over TCP loopback, as a deployment's standbys stream over the network, so that
    /// <c>pg_stat_wal_receiver.sender_host</c> is an address; their <c>primary_conninfo</c> carries no password); other TCP
    /// connections from 127.0.0.1 need the password (SCRAM).
    /// </summary>
    public const string HostBasedAuthentication =
        """
        # Written by EfReplicaInterceptor.Testing.
        # TYPE  DATABASE     USER  ADDRESS       METHOD
        local   all          all                 trust
        local   replication  all                 trust
        host    all          all   127.0.0.1/32  scram-sha-256
        host    replication  all   127.0.0.1/32  trust

        """;

    /// <summary>
    /// pg_hba.conf of container servers: the application comes through the published port (from the Docker host's
    /// side of the network) and standbys from the set's own network, so TCP from any address, always with the password.
    /// </summary>
    public const string ContainerHostBasedAuthentication =
        """
        # Written by EfReplicaInterceptor.Testing (container backend).
        # TYPE  DATABASE     USER  ADDRESS  METHOD
        local   all          all            trust
        local   replication  all            trust
        host    all          all   all      scram-sha-256
        host    replication  all   all      scram-sha-256

        """;

    /// <summary>Writes (replacing) <c>efreplica.conf</c> in <paramref name="dataDirectory"/>.</summary>
    /// <remarks>Overwriting an existing file keeps its owner, so files stay owned by the server user.</remarks>
    public static void Write(
        string dataDirectory,
        string name,
        int port,
        string socketDirectory,
        bool listenOnLoopback,
        PostgresReplicaSetOptions options)
    {
        var text = Text(name, port, socketDirectory, listenOnLoopback ? "127.0.0.1" : string.Empty, options);
        File.WriteAllText(Path.Combine(dataDirectory, FileName), text);
    }

    /// <summary>The harness's settings for one server, as configuration file text.</summary>
    /// <param name="name">The server's name (its <c>cluster_name</c>).</param>
    /// <param name="port">The TCP port it listens on.</param>
    /// <param name="socketDirectory">Its unix socket folder.</param>
    /// <param name="listenAddresses"><c>listen_addresses</c>: empty for unix sockets only.</param>
    /// <param name="options">The set's options (max_connections, extra lines).</param>
    public static string Text(string name, int port, string socketDirectory, string listenAddresses, PostgresReplicaSetOptions options)
    {
        var text = new StringBuilder();
        text.AppendLine("# Written by EfReplicaInterceptor.Testing; rewritten whenever the harness creates this server.");
        text.AppendLine(CultureInfo.InvariantCulture, $"port = {port}");
        text.AppendLine(CultureInfo.InvariantCulture, $"listen_addresses = '{listenAddresses}'");
        text.AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{socketDirectory}'");

        // A standby's WAL receiver reports cluster_name as its application_name in pg_stat_replication.
        text.AppendLine(CultureInfo.InvariantCulture, $"cluster_name = '{name}'");

        // Test data is disposable: skip the durability work.
        // Not synchronous_commit = off: the walsender ships only flushed WAL, so it adds replica lag.
        text.AppendLine("fsync = off");
        text.AppendLine("full_page_writes = off");

        text.AppendLine("wal_level = replica");
        text.AppendLine("max_wal_senders = 20");
        text.AppendLine("max_replication_slots = 20");
        text.AppendLine("wal_keep_size = '256MB'");
        text.AppendLine("hot_standby = on");
        text.AppendLine("hot_standby_feedback = on");
        text.AppendLine("wal_receiver_status_interval = '1s'");
        text.AppendLine("wal_retrieve_retry_interval = '1s'");
        text.AppendLine(CultureInfo.InvariantCulture, $"max_connections = {options.MaxConnections}");

        // Local servers log to server.log in the data directory (pg_ctl -l), containers to their output; error messages quote the tail.
        text.AppendLine("logging_collector = off");
        text.AppendLine("log_min_messages = warning");
        text.AppendLine("log_line_prefix = '%m [%p] %q%a '");

        if (options.ExtraConfiguration.Count > 0)
        {
            text.AppendLine("# PostgresReplicaSetOptions.ExtraConfiguration");
            foreach (var line in options.ExtraConfiguration)
            {
                text.AppendLine(line);
            }
        }

        return text.ToString();
    }
}
