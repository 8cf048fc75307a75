using System.Globalization;
using EfReplicaInterceptor.Testing.Internal;
using Npgsql;

namespace EfReplicaInterceptor.Testing;

/// <summary>
/// One PostgreSQL server of a <see cref="PostgresReplicaSet"/>: the primary or a streaming hot
/// standby, with the operations tests use to inject lag and failures for real.
/// </summary>
/// <remarks>
/// <para>
/// With the container backend (<see cref="PostgresReplicaSet.Backend"/>), the server runs in a container and has
/// faults local servers cannot have: <see cref="PauseContainerAsync"/> (a hung host), <see cref="KillAsync"/>,
/// <see cref="DisconnectFromServersAsync"/> and <see cref="DisconnectFromApplicationAsync"/> (network partitions).
/// On local servers those throw <see cref="NotSupportedException"/>.
/// </para>
/// <para>
/// For servers given through <c>EFREPLICA_TEST_PRIMARY</c>/<c>EFREPLICA_TEST_STANDBY</c>
/// (<see cref="PostgresReplicaSet.IsExternal"/>), the operations that need control of the server
/// process (<see cref="StopAsync"/>, <see cref="StartAsync"/>, <see cref="RestartAsync"/>,
/// <see cref="PromoteAsync"/>) throw <see cref="NotSupportedException"/>; the SQL-based ones work
/// when the connection string's user is a superuser.
/// </para>
/// </remarks>
public sealed class PostgresServer
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    // How long a hang or a resume may take to show in /proc (a process stops when its system call returns); generous for a
    // loaded machine, and only a bound: the wait ends as soon as the states change.
    private static readonly TimeSpan SignalBound = TimeSpan.FromSeconds(30);

    private readonly PgTools? _tools;
    private readonly ContainerServer? _container;
    private readonly string _socketDirectory;
    private readonly string? _logFile;
    private readonly TimeSpan _timeout;
    private readonly string _queryConnectionString;
    private readonly string _controlConnectionString;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private IReadOnlyList<int>? _hungProcesses;
    private volatile bool _containerHung;

    private PostgresServer(
        string name,
        string host,
        int port,
        string connectionString,
        string dataDirectory,
        string socketDirectory,
        string? logFile,
        PgTools? tools,
        TimeSpan timeout,
        string controlConnectionString,
        ContainerServer? container = null)
    {
        _container = container;
        Name = name;
        Host = host;
        Port = port;
        ConnectionString = connectionString;
        DataDirectory = dataDirectory;
        _socketDirectory = socketDirectory;
        _logFile = logFile;
        _tools = tools;
        _timeout = timeout;
        _queryConnectionString = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;
        _controlConnectionString = controlConnectionString;
    }

    /// <summary>The server's role-free name in its set: <c>primary</c>, <c>standby1</c>, <c>standby2</c>, …</summary>
    public string Name { get; }

    /// <summary>The host clients connect to: <c>127.0.0.1</c> for servers the harness started.</summary>
    public string Host { get; }

    /// <summary>The TCP port clients connect to; it stays the same across <see cref="StopAsync"/>/<see cref="StartAsync"/>.</summary>
    public int Port { get; }

    /// <summary>
    /// An Npgsql connection string for the application database (Host, Port, Database, Username,
    /// Password; password authentication over TCP). Pooling is left on; treat the string as a
    /// secret and do not log it.
    /// </summary>
    public string ConnectionString { get; }

    /// <summary>
    /// The server's data directory; its log is <c>server.log</c> in it. Empty for an external server; for a container
    /// server, the folder inside the container (its log is the container's output).
    /// </summary>
    public string DataDirectory { get; }

    /// <summary>
    /// Whether the server's postmaster process is alive (read from <c>postmaster.pid</c> and
    /// <c>/proc</c>, not from the harness's own bookkeeping). Always true for an external server; for a
    /// container server, whether its container was running when the harness last asked Docker.
    /// </summary>
    public bool IsRunning =>
        IsExternal
        || (_container is not null ? _container.IsRunning : HarnessDirectories.PostmasterProcessId(DataDirectory) is { } id && LinuxProcesses.IsAlive(id) && LinuxProcesses.IsPostgres(id));

    internal bool IsExternal => _tools is null && _container is null;

    internal string? LogFile => _logFile;

    /// <summary>
    /// Pauses WAL replay (<c>SELECT pg_wal_replay_pause()</c>) and waits until
    /// <c>pg_get_wal_replay_pause_state()</c> is <c>paused</c>: from then on, changes committed on
    /// the primary are received but not visible on this standby until <see cref="ResumeReplayAsync"/>.
    /// </summary>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="TimeoutException">Replay did not pause within the operation timeout.</exception>
    public async Task PauseReplayAsync(CancellationToken ct = default)
    {
        await ExecuteAsync("SELECT pg_wal_replay_pause()", ct).ConfigureAwait(false);
        await PollAsync(
            "WAL replay to pause",
            async (connection, token) => await ScalarOnAsync<string>(connection, "SELECT pg_get_wal_replay_pause_state()", token).ConfigureAwait(false) == "paused",
            _timeout,
            ct).ConfigureAwait(false);
    }

    /// <summary>Resumes WAL replay (<c>SELECT pg_wal_replay_resume()</c>) and waits until it is no longer paused.</summary>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="TimeoutException">Replay did not resume within the operation timeout.</exception>
    public async Task ResumeReplayAsync(CancellationToken ct = default)
    {
        await ExecuteAsync("SELECT pg_wal_replay_resume()", ct).ConfigureAwait(false);
        await PollAsync(
            "WAL replay to resume",
            async (connection, token) => await ScalarOnAsync<string>(connection, "SELECT pg_get_wal_replay_pause_state()", token).ConfigureAwait(false) == "not paused",
            _timeout,
            ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Sets <c>recovery_min_apply_delay</c> on this standby (<c>ALTER SYSTEM</c> and
    /// <c>pg_reload_conf()</c>) and waits until new sessions see the value. The delay applies to
    /// commit records, so committed changes become visible on the standby that much later;
    /// <see cref="TimeSpan.Zero"/> removes it.
    /// </summary>
    /// <param name="delay">The delay, whole milliseconds; zero or more.</param>
    /// <param name="ct">Cancels the wait.</param>
    public async Task SetRecoveryMinApplyDelayAsync(TimeSpan delay, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        var milliseconds = ((long)delay.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        await ExecuteAsync($"ALTER SYSTEM SET recovery_min_apply_delay = '{milliseconds}ms'", ct).ConfigureAwait(false);
        await ExecuteAsync("SELECT pg_reload_conf()", ct).ConfigureAwait(false);

        // New backends get the reloaded value once the postmaster has processed SIGHUP; poll on fresh sessions.
        await PollAsync(
            $"recovery_min_apply_delay to become {milliseconds} ms",
            async (_, token) => await ControlScalarAsync<string>("SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'", token).ConfigureAwait(false) == milliseconds,
            _timeout,
            ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops the server with <c>pg_ctl stop -m fast|immediate</c> and waits until it is down.
    /// Does nothing when it is not running. Pooled connections to it are not cleared: the
    /// application under test sees what a real outage gives it.
    /// </summary>
    /// <param name="mode">Fast (clean shutdown, the default) or immediate (like a crash).</param>
    /// <param name="ct">Cancels the wait (the stop may still complete).</param>
    /// <exception cref="NotSupportedException">The server is external.</exception>
    public async Task StopAsync(StopMode mode = StopMode.Fast, CancellationToken ct = default)
    {
        if (_container is not null)
        {
            await _container.StopAsync(mode, ct).ConfigureAwait(false);
            return;
        }

        var tools = RequireControl("stop");
        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!IsRunning)
            {
                return;
            }

            var stop = await tools.RunAsync(
                "pg_ctl",
                ["stop", "-D", DataDirectory, "-m", mode == StopMode.Immediate ? "immediate" : "fast", "-w", "-t", HarnessDirectories.Seconds(_timeout)],
                _socketDirectory,
                _timeout + TimeSpan.FromSeconds(5),
                ct).ConfigureAwait(false);
            if (!stop.Succeeded)
            {
                throw Failure($"Stopping PostgreSQL server '{Name}' (-m {mode.ToString().ToLowerInvariant()}) failed. {stop.Describe()}");
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Starts the server again (same port, same data directory) with <c>pg_ctl start -w</c> and waits
    /// until it accepts connections; a standby then reconnects to its primary by itself. Does nothing
    /// when it is already running.
    /// </summary>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="NotSupportedException">The server is external.</exception>
    /// <exception cref="InvalidOperationException">The server did not start; the message has its log's last lines.</exception>
    public async Task StartAsync(CancellationToken ct = default)
    {
        if (_container is not null)
        {
            await _container.StartAsync(ct).ConfigureAwait(false);
            await WaitUntilAcceptingAsync(ct).ConfigureAwait(false);
            return;
        }

        RequireControl("start");
        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (IsRunning)
            {
                return;
            }

            var result = await StartProcessAsync(ct).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                throw Failure($"Starting PostgreSQL server '{Name}' on port {Port} failed. {result.Describe()}");
            }
        }
        finally
        {
            _lifecycle.Release();
        }

        await WaitUntilAcceptingAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Stops the server (see <see cref="StopAsync"/>) and starts it again (see <see cref="StartAsync"/>).</summary>
    /// <param name="mode">How to stop it; fast by default.</param>
    /// <param name="ct">Cancels the waits.</param>
    /// <exception cref="NotSupportedException">The server is external.</exception>
    public async Task RestartAsync(StopMode mode = StopMode.Fast, CancellationToken ct = default)
    {
        await StopAsync(mode, ct).ConfigureAwait(false);
        await StartAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Promotes this standby to a primary (<c>pg_ctl promote</c>) and waits until
    /// <c>pg_is_in_recovery()</c> is false, so it accepts writes. Never start the old primary again
    /// afterwards: there would be two writable primaries.
    /// </summary>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="NotSupportedException">The server is external.</exception>
    /// <exception cref="TimeoutException">The server was still in recovery after the operation timeout.</exception>
    public async Task PromoteAsync(CancellationToken ct = default)
    {
        if (_container is not null)
        {
            // pg_promote() works alike in every image (PostgreSQL 12 and later); pg_ctl would have to run as the server's user.
            await ExecuteAsync(
                string.Create(CultureInfo.InvariantCulture, $"SELECT pg_promote(wait => true, wait_seconds => {Math.Max(1, (int)_timeout.TotalSeconds)})"),
                ct).ConfigureAwait(false);
        }
        else
        {
            await PromoteLocalAsync(ct).ConfigureAwait(false);
        }

        await PollAsync(
            "the promoted server to leave recovery (pg_is_in_recovery() = false)",
            async (connection, token) => !await ScalarOnAsync<bool>(connection, "SELECT pg_is_in_recovery()", token).ConfigureAwait(false),
            _timeout,
            ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Freezes the server's container (<c>docker pause</c>): every process stops where it is, as on a hung host. The
    /// kernel still accepts TCP connections to its published port, but nothing answers, so clients wait on their own
    /// timeouts. <see cref="UnpauseContainerAsync"/> lets it go on as if nothing happened.
    /// </summary>
    /// <param name="ct">Cancels the operation.</param>
    /// <exception cref="NotSupportedException">The server is not in a container.</exception>
    public Task PauseContainerAsync(CancellationToken ct = default) => RequireContainer("pause the container of").PauseAsync(ct);

    /// <summary>Unfreezes a container paused with <see cref="PauseContainerAsync"/>; does nothing when it is not paused.</summary>
    /// <param name="ct">Cancels the operation.</param>
    /// <exception cref="NotSupportedException">The server is not in a container.</exception>
    public Task UnpauseContainerAsync(CancellationToken ct = default) => RequireContainer("unpause the container of").UnpauseAsync(ct);

    /// <summary>
    /// Hangs the server for real: every one of its processes is frozen where it is (SIGSTOP to the postmaster named in its
    /// data directory's <c>postmaster.pid</c> and to each of its children; a container server's container is paused). The
    /// kernel still accepts TCP connections on its port, but nothing reads or answers, so a client waits on its own
    /// deadlines: Npgsql's command timeout and cancellation do not return (the cancel request hangs too).
    /// <see cref="ResumeAsync"/> lets it go on as if nothing happened; disposing the set resumes it as well, so a failed
    /// test does not leave a frozen server behind. Does nothing when the server is already hung. Returns only once every
    /// process is stopped (its state in <c>/proc</c> is <c>T</c>), so the server answers nothing from then on.
    /// </summary>
    /// <param name="ct">Cancels the operation.</param>
    /// <exception cref="NotSupportedException">The server is external.</exception>
    /// <exception cref="InvalidOperationException">The server is not running.</exception>
    public async Task HangAsync(CancellationToken ct = default)
    {
        if (_container is not null)
        {
            await _container.PauseAsync(ct).ConfigureAwait(false);
            IsHung = true;
            return;
        }

        RequireControl("hang");
        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_hungProcesses is not null)
            {
                return;
            }

            // Returns once every process is stopped (state T), not when the signals are sent: a test that goes on at once
            // must meet a server that answers nothing.
            var processes = await ProcessSignals.FreezeAsync(DataDirectory, SignalBound, ct).ConfigureAwait(false);
            if (processes.Count == 0)
            {
                throw Failure($"Cannot hang PostgreSQL server '{Name}': it is not running.");
            }

            _hungProcesses = processes;
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Continues a server hung with <see cref="HangAsync"/> (SIGCONT to the processes it froze) and returns once none of them
    /// is stopped any more; does nothing when it is not hung.
    /// </summary>
    /// <param name="ct">Cancels the operation.</param>
    public async Task ResumeAsync(CancellationToken ct = default)
    {
        if (_container is not null)
        {
            await _container.UnpauseAsync(ct).ConfigureAwait(false);
            IsHung = false;
            return;
        }

        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (Interlocked.Exchange(ref _hungProcesses, null) is { } processes)
            {
                await ProcessSignals.ThawAsync(processes, SignalBound, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>True between <see cref="HangAsync"/> and <see cref="ResumeAsync"/>.</summary>
    public bool IsHung
    {
        get => _container is not null ? _containerHung : _hungProcesses is not null;
        private set => _containerHung = value;
    }

    /// <summary>
    /// Kills the server's container (SIGKILL to every process, no shutdown at all, as when a host loses power) and
    /// waits until it has exited. <see cref="StartAsync"/> brings it back with crash recovery.
    /// </summary>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="NotSupportedException">The server is not in a container.</exception>
    public Task KillAsync(CancellationToken ct = default) => RequireContainer("kill").KillAsync(ct);

    /// <summary>
    /// Partitions this server from the other servers of its set: its container leaves the set's servers network, so
    /// replication to or from it stops (a standby's WAL receiver loses the primary and its lag grows), while the
    /// application still reaches it through its published port and it still answers queries.
    /// <see cref="ReconnectAsync"/> heals the partition.
    /// </summary>
    /// <param name="ct">Cancels the operation.</param>
    /// <exception cref="NotSupportedException">The server is not in a container.</exception>
    public Task DisconnectFromServersAsync(CancellationToken ct = default) => RequireContainer("partition").DisconnectFromServersAsync(ct);

    /// <summary>
    /// Partitions this server from the application while it keeps running: its published port on 127.0.0.1 stops
    /// accepting connections and open sessions are cut. Docker moves a published port to any network a container is
    /// still on, so the container leaves every network: it is cut off from the other servers too (no replication).
    /// <see cref="ReconnectAsync"/> heals the partition.
    /// </summary>
    /// <param name="ct">Cancels the operation.</param>
    /// <exception cref="NotSupportedException">The server is not in a container.</exception>
    public Task DisconnectFromApplicationAsync(CancellationToken ct = default) => RequireContainer("partition").DisconnectFromApplicationAsync(ct);

    /// <summary>
    /// Heals what <see cref="DisconnectFromServersAsync"/> or <see cref="DisconnectFromApplicationAsync"/> did: the
    /// container joins its networks again. A standby's WAL receiver reconnects by itself within a second or so.
    /// </summary>
    /// <param name="ct">Cancels the operation.</param>
    /// <exception cref="NotSupportedException">The server is not in a container.</exception>
    public Task ReconnectAsync(CancellationToken ct = default) => RequireContainer("reconnect").ReconnectAsync(ct);

    private async Task PromoteLocalAsync(CancellationToken ct)
    {
        var tools = RequireControl("promote");
        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var promote = await tools.RunAsync(
                "pg_ctl",
                ["promote", "-D", DataDirectory, "-w", "-t", HarnessDirectories.Seconds(_timeout)],
                _socketDirectory,
                _timeout + TimeSpan.FromSeconds(5),
                ct).ConfigureAwait(false);
            if (!promote.Succeeded)
            {
                throw Failure($"Promoting PostgreSQL server '{Name}' failed. {promote.Describe()}");
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Runs <paramref name="sql"/> on a fresh, non-pooled connection to this server (over TCP, as
    /// <see cref="ConnectionString"/> does) and returns the first column of the first row.
    /// </summary>
    /// <typeparam name="T">The expected type; read with Npgsql's <c>GetFieldValue&lt;T&gt;</c>.</typeparam>
    /// <param name="sql">One statement.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The value; <c>default</c> for SQL NULL or no row when <typeparamref name="T"/> allows null.</returns>
    /// <exception cref="InvalidOperationException">The result is NULL or there is no row and <typeparamref name="T"/> is a non-nullable value type.</exception>
    public async Task<T> ScalarAsync<T>(string sql, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sql);
        var connection = new NpgsqlConnection(_queryConnectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            return await ScalarOnAsync<T>(connection, sql, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Runs <paramref name="sql"/> on a fresh, non-pooled connection to this server.</summary>
    /// <param name="sql">One or more statements (simple protocol when there are several).</param>
    /// <param name="ct">Cancels the command.</param>
    public async Task ExecuteAsync(string sql, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sql);
        var connection = new NpgsqlConnection(_queryConnectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            var command = new NpgsqlCommand(sql, connection);
            await using (command.ConfigureAwait(false))
            {
                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Name} ({Host}:{Port})");

    /// <summary>What the tests connect with: the harness's user over TCP on loopback.</summary>
    private static string LoopbackConnectionString(int port, string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = port,
        Database = database,
        Username = ServerConfiguration.UserName,
        Password = ServerConfiguration.Password,
    }.ConnectionString;

    internal static PostgresServer Local(string name, int port, string database, string dataDirectory, string socketDirectory, PgTools tools, TimeSpan timeout)
    {
        var connectionString = LoopbackConnectionString(port, database);

        // The harness's own polling goes over the unix socket (trusted: no SCRAM round trips).
        var control = new NpgsqlConnectionStringBuilder
        {
            Host = socketDirectory,
            Port = port,
            Database = database,
            Username = ServerConfiguration.UserName,
            Pooling = false,
            Timeout = 5,
        }.ConnectionString;

        return new PostgresServer(
            name,
            "127.0.0.1",
            port,
            connectionString,
            dataDirectory,
            socketDirectory,
            Path.Combine(dataDirectory, ServerConfiguration.LogFileName),
            tools,
            timeout,
            control);
    }

    internal static PostgresServer InContainer(string name, int port, string database, string dataDirectory, ContainerServer container, TimeSpan timeout)
    {
        var connectionString = LoopbackConnectionString(port, database);

        // No unix socket reaches into a container: the harness's own sessions use the published port too.
        var control = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 5 }.ConnectionString;
        return new PostgresServer(name, "127.0.0.1", port, connectionString, dataDirectory, string.Empty, null, null, timeout, control, container);
    }

    internal ContainerServer? Container => _container;

    internal static PostgresServer External(string name, string connectionString, TimeSpan timeout)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var host = builder.Host ?? "localhost";
        var control = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;
        return new PostgresServer(name, host, builder.Port, connectionString, string.Empty, string.Empty, null, null, timeout, control);
    }

    /// <summary>Runs <c>pg_ctl start -w</c>; the caller interprets the result.</summary>
    internal Task<ToolResult> StartProcessAsync(CancellationToken ct) =>
        _tools!.RunAsync(
            "pg_ctl",
            ["start", "-D", DataDirectory, "-l", _logFile!, "-w", "-t", HarnessDirectories.Seconds(_timeout)],
            _socketDirectory,
            _timeout + TimeSpan.FromSeconds(5),
            ct);

    /// <summary>Waits until a session can be opened and runs a query.</summary>
    internal Task WaitUntilAcceptingAsync(CancellationToken ct) =>
        PollAsync(
            "the server to accept connections",
            async (connection, token) => await ScalarOnAsync<int>(connection, "SELECT 1", token).ConfigureAwait(false) == 1,
            _timeout,
            ct);

    /// <summary>Runs <paramref name="sql"/> on a fresh harness-side connection (unix socket for local servers).</summary>
    internal async Task<T> ControlScalarAsync<T>(string sql, CancellationToken ct)
    {
        var connection = new NpgsqlConnection(_controlConnectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            return await ScalarOnAsync<T>(connection, sql, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Evaluates <paramref name="condition"/> every few milliseconds on one harness-side connection
    /// (reopened after errors, which count as "not yet") until it holds.
    /// </summary>
    /// <exception cref="TimeoutException">It did not hold within <paramref name="timeout"/>; the message names the wait, the last error and the log's tail.</exception>
    internal async Task PollAsync(
        string waitingFor,
        Func<NpgsqlConnection, CancellationToken, Task<bool>> condition,
        TimeSpan timeout,
        CancellationToken ct,
        Func<Task<string>>? describeState = null)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        NpgsqlConnection? connection = null;
        Exception? lastError = null;
        try
        {
            while (true)
            {
                try
                {
                    if (connection is null)
                    {
                        connection = new NpgsqlConnection(_controlConnectionString);
                        await connection.OpenAsync(limit.Token).ConfigureAwait(false);
                    }

                    if (await condition(connection, limit.Token).ConfigureAwait(false))
                    {
                        return;
                    }

                    lastError = null;
                }
                catch (Exception exception) when (exception is NpgsqlException or IOException && !limit.IsCancellationRequested)
                {
                    lastError = exception;
                    if (connection is not null)
                    {
                        await connection.DisposeAsync().ConfigureAwait(false);
                        connection = null;
                    }
                }

                await Task.Delay(PollInterval, limit.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            var state = string.Empty;
            if (describeState is not null)
            {
                try
                {
                    state = " " + await describeState().ConfigureAwait(false);
                }
                catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or IOException)
                {
                    state = $" (Its state could not be read: {exception.Message})";
                }
            }

            throw new TimeoutException(
                string.Create(CultureInfo.InvariantCulture, $"PostgreSQL server '{Name}' ({Host}:{Port}): timed out after {timeout.TotalSeconds:0.#} s waiting for {waitingFor}.{state}")
                + (lastError is null ? string.Empty : $" Last error: {lastError.GetType().Name}: {lastError.Message}")
                + HarnessDirectories.LogTail(_logFile),
                lastError);
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>An exception whose message ends with the last lines of this server's log.</summary>
    internal InvalidOperationException Failure(string message, Exception? inner = null) =>
        new(message + HarnessDirectories.LogTail(_logFile), inner);

    internal static async Task<T> ScalarOnAsync<T>(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        var command = new NpgsqlCommand(sql, connection);
        await using (command.ConfigureAwait(false))
        {
            var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(ct).ConfigureAwait(false) || await reader.IsDBNullAsync(0, ct).ConfigureAwait(false))
                {
                    return default(T) is null
                        ? default!
                        : throw new InvalidOperationException($"`{sql}` returned no value, which {typeof(T).Name} cannot hold; use a nullable type.");
                }

                return await reader.GetFieldValueAsync<T>(0, ct).ConfigureAwait(false);
            }
        }
    }

    private ContainerServer RequireContainer(string operation) =>
        _container ?? throw new NotSupportedException(
            $"Cannot {operation} PostgreSQL server '{Name}': it does not run in a container. Start the set with the container backend "
            + $"({PostgresReplicaSet.BackendEnvironmentVariable}=containers, or PostgresReplicaSetOptions.Backend), "
            + "or skip this test when PostgresReplicaSet.Backend is not Containers.");

    private PgTools RequireControl(string operation) =>
        _tools ?? throw new NotSupportedException(
            $"Cannot {operation} PostgreSQL server '{Name}': it is an external server (EFREPLICA_TEST_PRIMARY / EFREPLICA_TEST_STANDBY are set), "
            + "and the harness does not control its process. Unset those variables to let the harness start its own servers, "
            + "or skip this test when PostgresReplicaSet.IsExternal is true.");
}
