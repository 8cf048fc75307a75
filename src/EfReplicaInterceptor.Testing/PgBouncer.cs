using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using EfReplicaInterceptor.Testing.Internal;
using Npgsql;

namespace EfReplicaInterceptor.Testing;

/// <summary>
/// A real PgBouncer (1.18, Debian's <c>pgbouncer</c>, installed by <c>build/ensure-pgbouncer.sh</c>) in front of one
/// <see cref="PostgresServer"/>, as teams run it in front of every node: one process listening on 127.0.0.1 on a free port, in
/// session or transaction pooling, forwarding every database name to its server. Start one with <see cref="StartAsync"/> (or
/// one per server of a set with <see cref="StartForEachAsync"/>); dispose it to stop the process and delete its files.
/// </summary>
/// <remarks>
/// <para>
/// Clients authenticate to PgBouncer with the server's own user name and password (SCRAM; PgBouncer keeps them in a
/// <c>userlist.txt</c>) and PgBouncer logs in to the server with them. It lives in a fresh folder under
/// <c>/tmp/efreplica-pgbouncer</c> (<c>pgbouncer.ini</c>, <c>userlist.txt</c>, <c>pgbouncer.log</c> with every client login and
/// server connection logged, as by default) and, when this process is
/// root, runs as the unprivileged user the harness's servers run as (PgBouncer refuses root). A PgBouncer whose owning test
/// process died is killed and its folder removed by the next <see cref="StartAsync"/>.
/// </para>
/// <para>
/// What PgBouncer does when its server stops (measured with 1.18): sessions linked to the server get
/// <c>FATAL 08P01 "server conn crashed?"</c>, and new queries get <c>FATAL 08P01 "server login has been failing, try again later
/// (server_login_retry)"</c> for up to <see cref="PgBouncerOptions.ServerLoginRetry"/> after a failed login, the server back or
/// not; opening a connection to PgBouncer succeeds either way, the error arrives at the first query.
/// <see cref="WaitUntilForwardingAsync"/> tells when it forwards again.
/// </para>
/// </remarks>
public sealed class PgBouncer : IAsyncDisposable
{
    /// <summary>The environment variable naming the <c>pgbouncer</c> program explicitly: <c>EFREPLICA_PGBOUNCER</c>.</summary>
    public const string ProgramEnvironmentVariable = "EFREPLICA_PGBOUNCER";

    /// <summary>The environment variable that makes a missing PgBouncer a failure outside CI too: <c>EFREPLICA_REQUIRE_PGBOUNCER=1</c>.</summary>
    public const string RequireEnvironmentVariable = "EFREPLICA_REQUIRE_PGBOUNCER";

    /// <summary>The script that installs it: <c>build/ensure-pgbouncer.sh</c> (run by <c>build/test.sh</c>).</summary>
    public const string InstallScript = "build/ensure-pgbouncer.sh";

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(2);
    private static readonly ConcurrentDictionary<PgBouncer, byte> LiveBouncers = new();
    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false); // PgBouncer reads a byte order mark as a syntax error

    private readonly string _probeConnectionString;
    private readonly Lock _gate = new();
    private DaemonProcess? _daemon;
    private Task? _disposal;

    static PgBouncer()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var bouncer in LiveBouncers.Keys)
            {
                bouncer._daemon?.Kill();
            }
        };
    }

    private PgBouncer(PostgresServer server, PgBouncerOptions options, string directory, int port)
    {
        Server = server;
        PoolMode = options.PoolMode;
        ServerLoginRetry = options.ServerLoginRetry;
        Directory = directory;
        Port = port;
        var builder = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Host = Host, Port = port };
        if (options.PoolMode == PgBouncerPoolMode.Transaction)
        {
            builder.NoResetOnClose = true;
            builder.MaxAutoPrepare = 0;
        }

        ConnectionString = builder.ConnectionString;
        _probeConnectionString = new NpgsqlConnectionStringBuilder(ConnectionString)
        {
            Pooling = false,
            Timeout = (int)AttemptTimeout.TotalSeconds,
            CommandTimeout = (int)AttemptTimeout.TotalSeconds,
        }.ConnectionString;
    }

    /// <summary>The server PgBouncer forwards to.</summary>
    public PostgresServer Server { get; }

    /// <summary>The pool mode it runs in.</summary>
    public PgBouncerPoolMode PoolMode { get; }

    /// <summary>Its <c>server_login_retry</c>.</summary>
    public TimeSpan ServerLoginRetry { get; }

    /// <summary>Where it listens: <c>127.0.0.1</c>.</summary>
    public string Host => "127.0.0.1";

    /// <summary>The port it listens on (a free one).</summary>
    public int Port { get; }

    /// <summary>Its folder under <c>/tmp/efreplica-pgbouncer</c>.</summary>
    public string Directory { get; }

    /// <summary>Its log file (PgBouncer's standard output and error).</summary>
    public string LogFile => Path.Combine(Directory, "pgbouncer.log");

    /// <summary>
    /// An Npgsql connection string to the server's database through PgBouncer (the server's user and password, pooling on); in
    /// transaction pooling with <c>No Reset On Close=true;Max Auto Prepare=0</c>. Treat it as a secret.
    /// </summary>
    public string ConnectionString { get; }

    /// <summary>Whether the PgBouncer process runs.</summary>
    public bool IsRunning => _daemon?.IsAlive == true;

    /// <summary>
    /// True when tests that need PgBouncer must fail rather than skip when it is missing: on CI (<c>CI=true</c>) and when
    /// <c>EFREPLICA_REQUIRE_PGBOUNCER=1</c>.
    /// </summary>
    public static bool IsRequired =>
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase)
        || Environment.GetEnvironmentVariable(RequireEnvironmentVariable) is "1" or "true";

    /// <summary>
    /// Finds the <c>pgbouncer</c> program: the file named by <c>EFREPLICA_PGBOUNCER</c>, else <c>pgbouncer</c> on <c>PATH</c>, in
    /// <c>/usr/sbin</c> or in <c>/usr/bin</c>.
    /// </summary>
    /// <param name="program">The program, when found.</param>
    /// <param name="problem">What is missing and how to install it, when not.</param>
    /// <returns>True when it was found.</returns>
    public static bool TryLocateProgram(out string? program, out string? problem)
    {
        var configured = Environment.GetEnvironmentVariable(ProgramEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            program = File.Exists(configured) ? Path.GetFullPath(configured) : null;
            problem = program is null ? $"{ProgramEnvironmentVariable} is set to '{configured}', which is not a file." : null;
            return program is not null;
        }

        program = PostgresBinaries.FindOnPath("pgbouncer")
            ?? new[] { "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer" }.FirstOrDefault(File.Exists);
        problem = program is null
            ? $"The 'pgbouncer' program was not found ({ProgramEnvironmentVariable} is not set; looked on PATH, in /usr/sbin and /usr/bin). "
              + $"Run `bash {InstallScript}` (as root, or with sudo; it installs Debian's pgbouncer package), or set {ProgramEnvironmentVariable}. "
              + "`bash build/test.sh` installs it by itself."
            : null;
        return program is not null;
    }

    /// <summary>
    /// Starts PgBouncer in front of <paramref name="server"/> and returns once it forwards a query to it (the server must be
    /// running). On failure the process is stopped and its folder removed.
    /// </summary>
    /// <param name="server">The server; a local or container server of the harness, or an external one.</param>
    /// <param name="options">Settings; defaults (session pooling, <c>server_login_retry</c> 15 s) when null.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The running PgBouncer; dispose it.</returns>
    /// <exception cref="InvalidOperationException">PgBouncer is not installed (the message names <see cref="InstallScript"/>) or exited at its start (the message has its log's last lines).</exception>
    /// <exception cref="TimeoutException">It did not forward within <see cref="PgBouncerOptions.StartTimeout"/>.</exception>
    public static async Task<PgBouncer> StartAsync(PostgresServer server, PgBouncerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(server);
        var validated = (options ?? new PgBouncerOptions()).Validated();
        if (!TryLocateProgram(out var program, out var problem))
        {
            throw new InvalidOperationException(problem);
        }

        var tools = await PgTools.GetAsync(cancellationToken).ConfigureAwait(false);
        await HarnessDirectories.CleanUpAbandonedSetsAsync(tools, cancellationToken, HarnessDirectories.PgBouncerRoot).ConfigureAwait(false);
        var directory = HarnessDirectories.CreateSetDirectory(tools.RunAsUser is not null, HarnessDirectories.PgBouncerRoot);
        var bouncer = new PgBouncer(server, validated, directory, FreePorts.Reserve());
        LiveBouncers.TryAdd(bouncer, 0);
        try
        {
            var configuration = bouncer.WriteConfiguration(validated);
            bouncer._daemon = DaemonProcess.Start("pgbouncer", program!, [configuration], tools.RunAsUser, directory, bouncer.LogFile);
            await bouncer.WaitUntilForwardingAsync(validated.StartTimeout, cancellationToken).ConfigureAwait(false);
            return bouncer;
        }
        catch
        {
            try
            {
                await bouncer.DisposeAsync().ConfigureAwait(false);
            }
            catch (InvalidOperationException)
            {
                // The start failure is what the caller needs to see; leftovers are removed by the next StartAsync.
            }

            throw;
        }
    }

    /// <summary>Starts one PgBouncer in front of each server of <paramref name="servers"/>: the primary first, then the standbys in order.</summary>
    /// <param name="servers">The set.</param>
    /// <param name="options">Settings shared by all; defaults when null.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The running PgBouncers, the primary's first; dispose each (already started ones are disposed when one fails).</returns>
    public static async Task<IReadOnlyList<PgBouncer>> StartForEachAsync(PostgresReplicaSet servers, PgBouncerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(servers);
        var started = new List<PgBouncer>();
        try
        {
            foreach (var server in servers.Standbys.Prepend(servers.Primary))
            {
                started.Add(await StartAsync(server, options, cancellationToken).ConfigureAwait(false));
            }

            return started.AsReadOnly();
        }
        catch
        {
            foreach (var bouncer in started)
            {
                await bouncer.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>
    /// One attempt at <c>SELECT 1</c> through PgBouncer on a fresh, non-pooled connection, abandoned after <paramref name="timeout"/>
    /// (also when the server hangs). Null when it forwarded; otherwise what went wrong (PgBouncer's error, say).
    /// </summary>
    /// <param name="timeout">How long the attempt may take; default 2 s.</param>
    /// <param name="ct">Cancels the attempt.</param>
    /// <returns>Null when the query went through; else the error.</returns>
    public async Task<string?> TryForwardAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var limit = timeout ?? AttemptTimeout;
        var attempt = SelectOneAsync(ct);
        try
        {
            await attempt.WaitAsync(limit, ct).ConfigureAwait(false);
            return null;
        }
        catch (TimeoutException)
        {
            _ = attempt.ContinueWith(static task => task.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            return string.Create(CultureInfo.InvariantCulture, $"no answer within {limit.TotalMilliseconds:0} ms");
        }
        catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or IOException)
        {
            return exception is PostgresException postgres ? $"{postgres.Severity} {postgres.SqlState} {postgres.MessageText}" : $"{exception.GetType().Name}: {exception.Message}";
        }
    }

    /// <summary>
    /// Polls <see cref="TryForwardAsync"/> every 50 ms until a query goes through PgBouncer to its server, and returns how long that
    /// took: "PgBouncer forwards again" after its server was restarted.
    /// </summary>
    /// <param name="timeout">How long to wait at most.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The time from the call to the first forwarded query.</returns>
    /// <exception cref="TimeoutException">Nothing went through within <paramref name="timeout"/>; the message has the last error and the log's last lines.</exception>
    /// <exception cref="InvalidOperationException">The PgBouncer process is not running.</exception>
    public async Task<TimeSpan> WaitUntilForwardingAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        string? lastError;
        while (true)
        {
            if (!IsRunning)
            {
                throw new InvalidOperationException($"PgBouncer in front of {Server} is not running." + HarnessDirectories.LogTail(LogFile));
            }

            var remaining = timeout - clock.Elapsed;
            lastError = await TryForwardAsync(remaining < AttemptTimeout ? (remaining > PollInterval ? remaining : PollInterval) : AttemptTimeout, ct).ConfigureAwait(false);
            if (lastError is null)
            {
                return clock.Elapsed;
            }

            if (clock.Elapsed >= timeout)
            {
                throw new TimeoutException(
                    string.Create(CultureInfo.InvariantCulture, $"PgBouncer on port {Port} did not forward a query to {Server} within {timeout.TotalSeconds:0.#} s. Last error: {lastError}")
                    + HarnessDirectories.LogTail(LogFile, 20));
            }

            await Task.Delay(PollInterval, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The last lines of PgBouncer's log, for test output and failure messages.</summary>
    /// <param name="maxLines">How many lines at most.</param>
    /// <returns>The lines, introduced by the log's path.</returns>
    public string LogTail(int maxLines = 40) => HarnessDirectories.LogTail(LogFile, maxLines);

    /// <summary>
    /// Stops PgBouncer (SIGTERM, SIGKILL if it does not exit within 5 s), clears Npgsql's pool of <see cref="ConnectionString"/>
    /// and deletes its folder. Safe to call more than once.
    /// </summary>
    /// <returns>A task that completes when it is gone.</returns>
    /// <exception cref="InvalidOperationException">The process could not be stopped or the folder not deleted.</exception>
    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposal ??= DisposeCoreAsync();
            return new ValueTask(_disposal);
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"PgBouncer ({PoolMode.ToString().ToLowerInvariant()} pooling) on {Host}:{Port} in front of {Server}");

    private static string Quoted(string value) => "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private async Task SelectOneAsync(CancellationToken ct)
    {
        var connection = new NpgsqlConnection(_probeConnectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            var command = new NpgsqlCommand("SELECT 1", connection);
            await using (command.ConfigureAwait(false))
            {
                await command.ExecuteScalarAsync(ct).ConfigureAwait(false);
            }
        }
    }

    private string WriteConfiguration(PgBouncerOptions options)
    {
        var server = new NpgsqlConnectionStringBuilder(Server.ConnectionString);
        var userList = Path.Combine(Directory, "userlist.txt");
        File.WriteAllText(userList, $"{Quoted(server.Username ?? ServerConfiguration.UserName)} {Quoted(server.Password ?? ServerConfiguration.Password)}\n", Utf8NoBom);

        var configuration = Path.Combine(Directory, "pgbouncer.ini");
        var text = string.Create(
            CultureInfo.InvariantCulture,
            $"""
            [databases]
            * = host={Server.Host} port={Server.Port}

            [pgbouncer]
            listen_addr = {Host}
            listen_port = {Port}
            unix_socket_dir =
            auth_type = scram-sha-256
            auth_file = {userList}
            pool_mode = {options.PoolMode.ToString().ToLowerInvariant()}
            server_login_retry = {(int)options.ServerLoginRetry.TotalSeconds}
            max_client_conn = 500
            default_pool_size = 40
            ignore_startup_parameters = extra_float_digits,options
            log_connections = 1
            log_disconnections = 1

            """);
        File.WriteAllText(configuration, text, Utf8NoBom);
        return configuration;
    }

    private async Task DisposeCoreAsync()
    {
        LiveBouncers.TryRemove(this, out _);
        var daemon = _daemon;
        var stillRunning = false;
        if (daemon is not null)
        {
            daemon.Terminate();
            if (!await daemon.WaitForExitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false))
            {
                daemon.Kill();
                stillRunning = !await daemon.WaitForExitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
            }

            daemon.Dispose();
        }

        using (var connection = new NpgsqlConnection(ConnectionString))
        {
            NpgsqlConnection.ClearPool(connection);
        }

        FreePorts.Release(Port);
        var deleted = HarnessDirectories.TryDelete(Directory);
        if (stillRunning || !deleted)
        {
            throw new InvalidOperationException(
                $"Disposing {this} was incomplete."
                + (stillRunning ? string.Create(CultureInfo.InvariantCulture, $" The process (pid {daemon!.ProcessId}) still runs.") : string.Empty)
                + (deleted ? string.Empty : $" The folder {Directory} could not be deleted."));
        }
    }
}
