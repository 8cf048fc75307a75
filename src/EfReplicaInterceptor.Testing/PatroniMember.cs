using System.Globalization;
using EfReplicaInterceptor.Testing.Internal;
using Npgsql;

namespace EfReplicaInterceptor.Testing;

/// <summary>
/// One member of a <see cref="PatroniCluster"/>: a Patroni process and the PostgreSQL server it manages, on fixed loopback
/// ports. Its role is Patroni's to decide; ask <see cref="PatroniCluster.GetClusterAsync"/> or the server itself
/// (<c>pg_is_in_recovery()</c>).
/// </summary>
public sealed class PatroniMember
{
    private readonly PostgresServer _server;
    private readonly string _controlConnectionString;
    private readonly string _maintenanceConnectionString;

    internal PatroniMember(string name, int port, int restApiPort, string database, string setDirectory, PgTools tools, TimeSpan timeout)
    {
        Name = name;
        Port = port;
        RestApiPort = restApiPort;
        RestApiUrl = new Uri(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{restApiPort}/"));
        DataDirectory = Path.Combine(setDirectory, name);
        ConfigurationFile = Path.Combine(setDirectory, name + ".yml");
        LogFile = Path.Combine(setDirectory, name + ".log");
        PasswordFile = Path.Combine(setDirectory, name + ".pgpass");
        _server = PostgresServer.Local(name, port, database, DataDirectory, setDirectory, tools, timeout);
        ConnectionString = _server.ConnectionString;

        // The harness's own polling goes over the unix socket in the set folder (trusted by pg_hba: no SCRAM round trips).
        _controlConnectionString = new NpgsqlConnectionStringBuilder
        {
            Host = setDirectory,
            Port = port,
            Database = database,
            Username = ServerConfiguration.UserName,
            Pooling = false,
            Timeout = 5,
            CommandTimeout = 10,
        }.ConnectionString;
        _maintenanceConnectionString = new NpgsqlConnectionStringBuilder(_controlConnectionString) { Database = "postgres" }.ConnectionString;
    }

    /// <summary>The member's Patroni name: <c>member1</c>, <c>member2</c>, …</summary>
    public string Name { get; }

    /// <summary>The PostgreSQL host: <c>127.0.0.1</c>.</summary>
    public string Host => "127.0.0.1";

    /// <summary>The PostgreSQL TCP port; the same for the member's whole life, whatever its role (<c>inet_server_port()</c> on it).</summary>
    public int Port { get; }

    /// <summary>The Patroni REST API's base URL, <c>http://127.0.0.1:&lt;port&gt;/</c> (<c>GET /cluster</c>, <c>GET /patroni</c>, …).</summary>
    public Uri RestApiUrl { get; }

    /// <summary>
    /// An Npgsql connection string for the application database on this member: Host <c>127.0.0.1</c>, Port, Database, Username
    /// <c>efreplica</c> (a superuser) and its password, password authentication (SCRAM) over TCP. Pooling is left on; treat it as a
    /// secret and do not log it. Build a multi-host string with <see cref="PatroniCluster.MultiHostConnectionString"/>.
    /// </summary>
    public string ConnectionString { get; }

    /// <summary>The member's PostgreSQL data directory (Patroni creates it; it may remove and rebuild it after a failed rewind).</summary>
    public string DataDirectory { get; }

    /// <summary>Whether the member's Patroni process runs (read from <c>/proc</c>).</summary>
    public bool IsRunning => Daemon?.IsAlive == true;

    /// <summary>Whether the member's PostgreSQL postmaster runs (read from <c>postmaster.pid</c> and <c>/proc</c>).</summary>
    public bool IsPostgresRunning =>
        HarnessDirectories.PostmasterProcessId(DataDirectory) is { } id && LinuxProcesses.IsAlive(id) && LinuxProcesses.IsPostgres(id);

    internal int RestApiPort { get; }

    internal string ConfigurationFile { get; }

    /// <summary>Patroni's log, with PostgreSQL's own messages in it.</summary>
    internal string LogFile { get; }

    internal string PasswordFile { get; }

    internal DaemonProcess? Daemon { get; set; }

    internal bool NoLoadBalance { get; set; }

    internal TimeSpan ReplayDelay { get; set; }

    internal string MaintenanceConnectionString => _maintenanceConnectionString;

    /// <summary>
    /// Runs <paramref name="sql"/> on a fresh, non-pooled connection to this member (over TCP, as <see cref="ConnectionString"/> does)
    /// and returns the first column of the first row.
    /// </summary>
    /// <typeparam name="T">The expected type.</typeparam>
    /// <param name="sql">One statement.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The value; <c>default</c> for SQL NULL when <typeparamref name="T"/> allows null.</returns>
    public Task<T> ScalarAsync<T>(string sql, CancellationToken ct = default) => _server.ScalarAsync<T>(sql, ct);

    /// <summary>Runs <paramref name="sql"/> on a fresh, non-pooled connection to this member.</summary>
    /// <param name="sql">One or more statements.</param>
    /// <param name="ct">Cancels the command.</param>
    /// <returns>A task that completes when the command has run.</returns>
    public Task ExecuteAsync(string sql, CancellationToken ct = default) => _server.ExecuteAsync(sql, ct);

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Name} ({Host}:{Port}, REST {RestApiPort})");

    /// <summary>
    /// Runs a query on the harness's control connection (unix socket), to the application database, or to <c>postgres</c> when
    /// <paramref name="maintenanceDatabase"/> (the application database exists only once the harness has created it).
    /// </summary>
    internal async Task<T> ControlScalarAsync<T>(string sql, CancellationToken ct, bool maintenanceDatabase = false)
    {
        var connection = new NpgsqlConnection(maintenanceDatabase ? _maintenanceConnectionString : _controlConnectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            return await PostgresServer.ScalarOnAsync<T>(connection, sql, ct).ConfigureAwait(false);
        }
    }

    internal void ClearPool()
    {
        using var connection = new NpgsqlConnection(ConnectionString);
        NpgsqlConnection.ClearPool(connection);
    }
}
