using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Globalization;
using EfReplicaInterceptor.Testing.Internal;
using Npgsql;
using NpgsqlTypes;

namespace EfReplicaInterceptor.Testing;

/// <summary>
/// A real PostgreSQL primary with streaming hot standbys on loopback, for integration tests, the
/// demo and benchmarks. Start one with <see cref="StartAsync"/>; dispose it to stop the servers
/// and delete their files.
/// </summary>
/// <remarks>
/// <para>
/// With the local backend (the default), the servers run from the binaries <see cref="PostgresBinaries.Locate()"/> finds, in a fresh folder
/// under <c>/tmp/efreplica-pg</c>, on free loopback ports, as an unprivileged user when this process
/// is root. Standbys are made with <c>pg_basebackup -R -X stream</c> and stream from the primary
/// over TCP on 127.0.0.1 (or from another standby: <see cref="AddStandbyAsync(PostgresServer, CancellationToken)"/>);
/// <see cref="StartAsync"/> returns once each one streams.
/// </para>
/// <para>
/// With the container backend (<c>EFREPLICA_TEST_BACKEND=containers</c> or
/// <see cref="PostgresReplicaSetOptions.Backend"/>), each server runs in a Docker container made with
/// Testcontainers.PostgreSql, on a Docker network of the set's own, its port published on 127.0.0.1 with the same
/// number inside, so <c>inet_server_port()</c> equals <see cref="PostgresServer.Port"/> on both backends.
/// Standbys stream from the primary over that network. Containers add faults local servers cannot have (see
/// <see cref="PostgresServer"/>). Containers and networks are removed on dispose, and those of crashed runs by the
/// next <see cref="StartAsync"/> (no resource reaper is used).
/// </para>
/// <para>
/// When the environment variables <c>EFREPLICA_TEST_PRIMARY</c> and <c>EFREPLICA_TEST_STANDBY</c>
/// (Npgsql connection strings; more standbys in <c>EFREPLICA_TEST_STANDBY2</c>, <c>…3</c>, …) are
/// set, the set uses those servers instead (<see cref="IsExternal"/>) and operations that need the
/// server processes throw <see cref="NotSupportedException"/>.
/// </para>
/// <para>
/// Sets whose owning process died (a crashed test run) are stopped and removed by the next
/// <see cref="StartAsync"/>; live sets are disposed when the process exits normally.
/// </para>
/// </remarks>
public sealed partial class PostgresReplicaSet : IAsyncDisposable
{
    /// <summary>The environment variable with the connection string of an existing primary: <c>EFREPLICA_TEST_PRIMARY</c>.</summary>
    public const string PrimaryEnvironmentVariable = "EFREPLICA_TEST_PRIMARY";

    /// <summary>The environment variable with the connection string of an existing standby: <c>EFREPLICA_TEST_STANDBY</c>.</summary>
    public const string StandbyEnvironmentVariable = "EFREPLICA_TEST_STANDBY";

    /// <summary>The environment variable that chooses the backend: <c>EFREPLICA_TEST_BACKEND</c>, <c>local</c> (default) or <c>containers</c>.</summary>
    public const string BackendEnvironmentVariable = "EFREPLICA_TEST_BACKEND";

    /// <summary>The environment variable with the container backend's image: <c>EFREPLICA_TEST_IMAGE</c>.</summary>
    public const string ImageEnvironmentVariable = "EFREPLICA_TEST_IMAGE";

    /// <summary>The container backend's default image, <c>efreplica/postgres:15</c>, built by <c>build/postgres-image.sh</c>.</summary>
    public const string DefaultContainerImage = "efreplica/postgres:15";

    private const int MaxStandbys = 16;

    private static readonly ConcurrentDictionary<PostgresReplicaSet, byte> LiveSets = new();

    private readonly PgTools? _tools;
    private readonly ContainerCluster? _containers;
    private readonly PostgresReplicaSetOptions _options;
    private readonly string? _directory;
    private readonly Lock _gate = new();
    private readonly List<int> _ports = [];
    private PostgresServer? _primary;
    private ReadOnlyCollection<PostgresServer> _standbys = ReadOnlyCollection<PostgresServer>.Empty;
    private int _lastStandbyNumber;
    private Task? _disposal;

    static PostgresReplicaSet()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => DisposeLiveSetsAtExit();
    }

    private PostgresReplicaSet(PgTools? tools, PostgresReplicaSetOptions options, string? directory, ContainerCluster? containers = null)
    {
        _tools = tools;
        _containers = containers;
        _options = options;
        _directory = directory;
    }

    /// <summary>The primary: writable, <c>pg_is_in_recovery()</c> false (until a test fails it over).</summary>
    public PostgresServer Primary => _primary ?? throw new InvalidOperationException("The set has no primary yet.");

    /// <summary>The standbys in the order they were added: <c>standby1</c>, <c>standby2</c>, …</summary>
    public IReadOnlyList<PostgresServer> Standbys
    {
        get
        {
            lock (_gate)
            {
                return _standbys;
            }
        }
    }

    /// <summary>The first standby, <c>Standbys[0]</c>.</summary>
    /// <exception cref="InvalidOperationException">The set was started without standbys.</exception>
    public PostgresServer Standby
    {
        get
        {
            var standbys = Standbys;
            return standbys.Count > 0 ? standbys[0] : throw new InvalidOperationException("The set has no standby; start it with standbys >= 1 or call AddStandbyAsync.");
        }
    }

    /// <summary>
    /// True when the servers come from <c>EFREPLICA_TEST_PRIMARY</c>/<c>EFREPLICA_TEST_STANDBY</c>
    /// rather than being started by the harness; tests that stop, start or promote servers should
    /// skip themselves then.
    /// </summary>
    public bool IsExternal => _tools is null && _containers is null;

    /// <summary>Where the servers run (see <see cref="PostgresBackend"/>); <see cref="PostgresBackend.Local"/> for an external set.</summary>
    public PostgresBackend Backend => _containers is null ? PostgresBackend.Local : PostgresBackend.Containers;

    /// <summary>
    /// A multi-host Npgsql connection string listing the primary and every standby, with
    /// <c>Target Session Attributes=primary</c>: Npgsql connects to whichever of them is the primary,
    /// also after a failover. Credentials and database are the primary's.
    /// </summary>
    public string MultiHostPrimaryConnectionString
    {
        get
        {
            var servers = new[] { Primary }.Concat(Standbys);
            return new NpgsqlConnectionStringBuilder(Primary.ConnectionString)
            {
                Host = string.Join(',', servers.Select(server => string.Create(CultureInfo.InvariantCulture, $"{server.Host}:{server.Port}"))),
                TargetSessionAttributes = "primary",
            }.ConnectionString;
        }
    }

    /// <summary>
    /// Starts a primary and <paramref name="standbys"/> streaming hot standbys (or connects to the
    /// external servers, see <see cref="IsExternal"/>), and returns once every standby streams.
    /// On failure everything started so far is stopped and removed.
    /// </summary>
    /// <param name="standbys">How many standbys, 0 to 16; default 1.</param>
    /// <param name="options">Settings; defaults when null.</param>
    /// <param name="cancellationToken">Cancels the start (what was started is cleaned up).</param>
    /// <returns>The running set; dispose it.</returns>
    /// <exception cref="PostgresBinariesNotFoundException">PostgreSQL is not installed (local backend).</exception>
    /// <exception cref="InvalidOperationException">A server could not be created or started; the message has the server log's last lines.</exception>
    /// <exception cref="TimeoutException">A server did not start or a standby did not stream within <see cref="PostgresReplicaSetOptions.OperationTimeout"/>.</exception>
    public static async Task<PostgresReplicaSet> StartAsync(int standbys = 1, PostgresReplicaSetOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(standbys);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(standbys, MaxStandbys);
        var validated = (options ?? new PostgresReplicaSetOptions()).Validated();

        var externalPrimary = Environment.GetEnvironmentVariable(PrimaryEnvironmentVariable);
        var externalStandbys = ExternalStandbyConnectionStrings();
        if (!string.IsNullOrWhiteSpace(externalPrimary) || externalStandbys.Count > 0)
        {
            return await ConnectExternalAsync(externalPrimary, externalStandbys, standbys, validated, cancellationToken).ConfigureAwait(false);
        }

        if (validated.Backend == PostgresBackend.Containers)
        {
            return await StartContainersAsync(standbys, validated, cancellationToken).ConfigureAwait(false);
        }

        var tools = await PgTools.GetAsync(cancellationToken).ConfigureAwait(false);
        await HarnessDirectories.CleanUpAbandonedSetsAsync(tools, cancellationToken).ConfigureAwait(false);
        var template = await DataDirectoryTemplate.GetAsync(tools, validated, cancellationToken).ConfigureAwait(false);

        var set = new PostgresReplicaSet(tools, validated, HarnessDirectories.CreateSetDirectory(tools.RunAsUser is not null));
        LiveSets.TryAdd(set, 0);
        try
        {
            var primaryDirectory = Path.Combine(set._directory!, "primary");
            await DataDirectoryTemplate.CopyAsync(template, primaryDirectory, validated.OperationTimeout, cancellationToken).ConfigureAwait(false);
            set._primary = await set.StartNewServerAsync("primary", primaryDirectory, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < standbys; i++)
            {
                await set.AddStandbyAsync(cancellationToken).ConfigureAwait(false);
            }

            return set;
        }
        catch
        {
            await set.DisposeAfterFailureAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Adds another streaming hot standby, made from the primary with <c>pg_basebackup -R -X stream</c>,
    /// and returns once it streams. It is appended to <see cref="Standbys"/>.
    /// </summary>
    /// <param name="ct">Cancels the operation.</param>
    /// <returns>The new standby.</returns>
    /// <exception cref="NotSupportedException">The set is external.</exception>
    public Task<PostgresServer> AddStandbyAsync(CancellationToken ct = default) => AddStandbyAsync(Primary, ct);

    /// <summary>
    /// Adds another streaming hot standby, made from <paramref name="upstream"/> (the primary, or a standby of this set:
    /// a cascading standby) with <c>pg_basebackup -R -X stream</c> over TCP on 127.0.0.1, and returns once it streams from
    /// it. It is appended to <see cref="Standbys"/>.
    /// </summary>
    /// <param name="upstream">The server it is made from and streams from.</param>
    /// <param name="ct">Cancels the operation.</param>
    /// <returns>The new standby.</returns>
    /// <exception cref="NotSupportedException">The set is external, or uses containers and <paramref name="upstream"/> is not the primary.</exception>
    public async Task<PostgresServer> AddStandbyAsync(PostgresServer upstream, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        if (_containers is not null)
        {
            if (upstream != Primary)
            {
                throw new NotSupportedException("The container backend makes standbys of the primary only.");
            }

            var standbyName = string.Create(CultureInfo.InvariantCulture, $"standby{Interlocked.Increment(ref _lastStandbyNumber)}");
            var containerStandby = await _containers.StartStandbyAsync(standbyName, Primary, ct).ConfigureAwait(false);
            await WaitForStreamingAsync(Primary, containerStandby, ct).ConfigureAwait(false);
            lock (_gate)
            {
                _standbys = Array.AsReadOnly([.. _standbys, containerStandby]);
            }

            return containerStandby;
        }

        var tools = _tools ?? throw new NotSupportedException(
            $"Cannot add a standby to an external replica set ({PrimaryEnvironmentVariable} / {StandbyEnvironmentVariable} are set): the harness does not control those servers.");

        var name = string.Create(CultureInfo.InvariantCulture, $"standby{Interlocked.Increment(ref _lastStandbyNumber)}");
        var dataDirectory = Path.Combine(_directory!, name);
        var backup = await tools.RunAsync("pg_basebackup", BaseBackupArguments(dataDirectory, upstream), _directory!, _options.OperationTimeout, ct).ConfigureAwait(false);
        if (!backup.Succeeded)
        {
            throw upstream.Failure($"Creating standby '{name}' failed: pg_basebackup from '{upstream.Name}' (port {upstream.Port}) did not succeed. {backup.Describe()}");
        }

        var standby = await StartNewServerAsync(name, dataDirectory, ct).ConfigureAwait(false);
        await WaitForStreamingAsync(upstream, standby, ct).ConfigureAwait(false);

        lock (_gate)
        {
            _standbys = Array.AsReadOnly([.. _standbys, standby]);
        }

        return standby;
    }

    /// <summary>
    /// <c>pg_basebackup</c>'s arguments for a standby of <paramref name="upstream"/> in <paramref name="dataDirectory"/>:
    /// over TCP on 127.0.0.1 (replication from there is trusted), so that <c>-R</c> writes a <c>primary_conninfo</c> with
    /// <c>host=127.0.0.1</c> and the standby's WAL receiver shows its upstream's address and port
    /// (<c>pg_stat_wal_receiver.sender_host</c>, <c>sender_port</c>), as over a network.
    /// </summary>
    private static string[] BaseBackupArguments(string dataDirectory, PostgresServer upstream) =>
    [
        "-D", dataDirectory,
        "-h", "127.0.0.1",
        "-p", upstream.Port.ToString(CultureInfo.InvariantCulture),
        "-U", ServerConfiguration.UserName,
        "-R", "-X", "stream", "-c", "fast", "--no-sync", "--no-manifest", "-w",
    ];

    /// <summary>
    /// Waits until <paramref name="standby"/> has replayed everything the primary had written when
    /// this method was called: standby <c>pg_last_wal_replay_lsn()</c> &gt;= primary
    /// <c>pg_current_wal_lsn()</c>. After it returns, reads on the standby see every transaction
    /// committed on the primary before the call.
    /// </summary>
    /// <param name="standby">A standby of this set (or any server in recovery).</param>
    /// <param name="timeout">The limit; <see cref="PostgresReplicaSetOptions.ReplayTimeout"/> (30 s by default) when null.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="InvalidOperationException"><paramref name="standby"/> is not in recovery.</exception>
    /// <exception cref="TimeoutException">Replay did not get there in time (paused, delayed or disconnected); the message has the standby's positions and state.</exception>
    public async Task WaitForReplayAsync(PostgresServer standby, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(standby);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        var limit = timeout ?? _options.ReplayTimeout;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(limit, TimeSpan.Zero, nameof(timeout));

        if (!await standby.ControlScalarAsync<bool>("SELECT pg_is_in_recovery()", ct).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"Cannot wait for replay on PostgreSQL server '{standby.Name}': it is not in recovery (not a standby, or promoted).");
        }

        var target = NpgsqlLogSequenceNumber.Parse(await Primary.ControlScalarAsync<string>("SELECT pg_current_wal_lsn()::text", ct).ConfigureAwait(false));
        await standby.PollAsync(
            $"replay to reach the primary's WAL position {target}",
            async (connection, token) =>
            {
                var replayed = await PostgresServer.ScalarOnAsync<string?>(connection, "SELECT pg_last_wal_replay_lsn()::text", token).ConfigureAwait(false);
                return replayed is not null && NpgsqlLogSequenceNumber.Parse(replayed) >= target;
            },
            limit,
            ct,
            () => DescribeRecoveryAsync(standby, ct)).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops every server (<c>pg_ctl stop -m immediate</c>, killing the postmaster if that fails) and
    /// deletes the set's folder. Safe to call more than once and after a failed start; external
    /// servers are left running.
    /// </summary>
    /// <exception cref="InvalidOperationException">A server could not be stopped or the folder not deleted.</exception>
    public ValueTask DisposeAsync()
    {
        Task disposal;
        lock (_gate)
        {
            disposal = _disposal ??= DisposeCoreAsync();
        }

        return new ValueTask(disposal);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        IsExternal ? "external replica set" : _containers is not null ? _containers.ToString() : $"replica set in {_directory}";

    /// <summary>Uses existing servers instead of starting any (what <see cref="StartAsync"/> does when the environment names them).</summary>
    internal static async Task<PostgresReplicaSet> ConnectExternalAsync(
        string? primaryConnectionString,
        IReadOnlyList<string> standbyConnectionStrings,
        int standbys,
        PostgresReplicaSetOptions options,
        CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(primaryConnectionString) || standbyConnectionStrings.Count == 0)
        {
            throw new InvalidOperationException(
                $"Set both {PrimaryEnvironmentVariable} and {StandbyEnvironmentVariable} (Npgsql connection strings of an existing primary and "
                + "its streaming standby) to test against existing servers, or neither to let the harness start its own.");
        }

        if (standbys > standbyConnectionStrings.Count)
        {
            throw new NotSupportedException(
                $"{standbys} standbys were requested, but only {standbyConnectionStrings.Count} external standby connection string(s) are set "
                + $"({StandbyEnvironmentVariable}, {StandbyEnvironmentVariable}2, …).");
        }

        var set = new PostgresReplicaSet(null, options, null)
        {
            _primary = PostgresServer.External("primary", primaryConnectionString, options.OperationTimeout),
        };
        set._standbys = Array.AsReadOnly(standbyConnectionStrings.Take(standbys).Select((connectionString, index) =>
            PostgresServer.External(string.Create(CultureInfo.InvariantCulture, $"standby{index + 1}"), connectionString, options.OperationTimeout)).ToArray());

        if (await set.Primary.ControlScalarAsync<bool>("SELECT pg_is_in_recovery()", cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"The server named by {PrimaryEnvironmentVariable} is in recovery (a standby); it must be the primary.");
        }

        foreach (var standby in set._standbys)
        {
            if (!await standby.ControlScalarAsync<bool>("SELECT pg_is_in_recovery()", cancellationToken).ConfigureAwait(false))
            {
                throw new InvalidOperationException($"The external server '{standby.Name}' ({standby.Host}:{standby.Port}) is not in recovery; it must be a hot standby of the primary.");
            }
        }

        return set;
    }

    private static async Task<PostgresReplicaSet> StartContainersAsync(int standbys, PostgresReplicaSetOptions options, CancellationToken cancellationToken)
    {
        var containers = await ContainerCluster.CreateAsync(options, cancellationToken).ConfigureAwait(false);
        var set = new PostgresReplicaSet(null, options, null, containers);
        LiveSets.TryAdd(set, 0);
        try
        {
            set._primary = await containers.StartPrimaryAsync(cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < standbys; i++)
            {
                await set.AddStandbyAsync(cancellationToken).ConfigureAwait(false);
            }

            return set;
        }
        catch
        {
            await set.DisposeAfterFailureAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static List<string> ExternalStandbyConnectionStrings()
    {
        var connectionStrings = new List<string>();
        for (var number = 1; ; number++)
        {
            var variable = number == 1 ? StandbyEnvironmentVariable : string.Create(CultureInfo.InvariantCulture, $"{StandbyEnvironmentVariable}{number}");
            var value = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrWhiteSpace(value))
            {
                return connectionStrings;
            }

            connectionStrings.Add(value);
        }
    }

    private static async Task<string> DescribeRecoveryAsync(PostgresServer standby, CancellationToken ct)
    {
        var state = await standby.ControlScalarAsync<string>(
            """
            SELECT format('Its receive LSN is %s, replay LSN %s, replay pause state %s, WAL receiver %s.',
                          coalesce(pg_last_wal_receive_lsn()::text, 'none'),
                          coalesce(pg_last_wal_replay_lsn()::text, 'none'),
                          pg_get_wal_replay_pause_state(),
                          coalesce((SELECT status FROM pg_stat_wal_receiver), 'not running'))
            """,
            ct).ConfigureAwait(false);
        return state;
    }

    private static void DisposeLiveSetsAtExit()
    {
        var sets = LiveSets.Keys.ToList();
        if (sets.Count == 0)
        {
            return;
        }

        try
        {
            // Blocking is unavoidable here: the process is exiting and the handler must finish first.
            Task.WhenAll(sets.Select(set => set.DisposeAsync().AsTask())).Wait(TimeSpan.FromSeconds(20));
        }
        catch (AggregateException)
        {
            // Leftovers are removed by the next StartAsync.
        }
    }

    /// <summary>Writes the server's configuration and starts it on a free port, trying another port when the chosen one was taken meanwhile.</summary>
    private async Task<PostgresServer> StartNewServerAsync(string name, string dataDirectory, CancellationToken ct)
    {
        const int Attempts = 5;
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePorts.Reserve();
            ServerConfiguration.Write(dataDirectory, name, port, _directory!, listenOnLoopback: true, _options);
            var server = PostgresServer.Local(name, port, _options.DatabaseName, dataDirectory, _directory!, _tools!, _options.OperationTimeout);

            // Start each attempt with an empty log (a standby's was copied from the primary). Truncating keeps the owner.
            if (File.Exists(server.LogFile))
            {
                await File.WriteAllTextAsync(server.LogFile, string.Empty, ct).ConfigureAwait(false);
            }

            ToolResult start;
            try
            {
                start = await server.StartProcessAsync(ct).ConfigureAwait(false);
            }
            catch
            {
                FreePorts.Release(port);
                throw;
            }

            if (start.Succeeded)
            {
                lock (_gate)
                {
                    _ports.Add(port);
                }

                await server.WaitUntilAcceptingAsync(ct).ConfigureAwait(false);
                return server;
            }

            FreePorts.Release(port);
            var log = HarnessDirectories.LogTail(server.LogFile);
            if (attempt < Attempts && log.Contains("Address already in use", StringComparison.Ordinal))
            {
                continue;
            }

            throw server.Failure($"Starting PostgreSQL server '{name}' on port {port} (data directory {dataDirectory}) failed. {start.Describe()}");
        }
    }

    private async Task WaitForStreamingAsync(PostgresServer primary, PostgresServer standby, CancellationToken ct)
    {
        var name = standby.Name;
        await primary.PollAsync(
            $"standby '{name}' to stream (pg_stat_replication.state = 'streaming' for application_name '{name}')",
            async (connection, token) => await PostgresServer.ScalarOnAsync<bool>(
                connection,
                $"SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = '{name}' AND state = 'streaming')",
                token).ConfigureAwait(false),
            _options.OperationTimeout,
            ct,
            async () => await DescribeRecoveryAsync(standby, ct).ConfigureAwait(false) + HarnessDirectories.LogTail(standby.LogFile)).ConfigureAwait(false);

        await standby.PollAsync(
            "its WAL receiver to stream (pg_stat_wal_receiver.status = 'streaming')",
            async (connection, token) => await PostgresServer.ScalarOnAsync<string?>(connection, "SELECT status FROM pg_stat_wal_receiver", token).ConfigureAwait(false) == "streaming",
            _options.OperationTimeout,
            ct).ConfigureAwait(false);
    }

    private async Task DisposeAfterFailureAsync()
    {
        try
        {
            await DisposeAsync().ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // The start failure is what the caller needs to see; leftovers are removed by the next StartAsync.
        }
    }

    private async Task DisposeCoreAsync()
    {
        LiveSets.TryRemove(this, out _);
        foreach (var server in new[] { _primary }.Concat(_standbys).OfType<PostgresServer>())
        {
            if (server.IsHung)
            {
                // A test that failed while a server hung: a frozen server cannot be stopped.
                await server.ResumeAsync().ConfigureAwait(false);
            }

            ClearPool(server.ConnectionString);
        }

        if (_containers is not null)
        {
            await _containers.DisposeAsync().ConfigureAwait(false);
            return;
        }

        if (_tools is null || _directory is null)
        {
            return;
        }

        var failures = await HarnessDirectories.StopServersUnderAsync(_directory, _tools, TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
        lock (_gate)
        {
            _ports.ForEach(FreePorts.Release);
            _ports.Clear();
        }

        var deleted = HarnessDirectories.TryDelete(_directory);
        if (failures.Count > 0 || !deleted)
        {
            throw new InvalidOperationException(
                $"Disposing the PostgreSQL replica set in {_directory} was incomplete."
                + (failures.Count > 0 ? $" Servers still running: {string.Join("; ", failures)}." : string.Empty)
                + (deleted ? string.Empty : $" The folder {_directory} could not be deleted."));
        }
    }

    private static void ClearPool(string connectionString)
    {
        using var connection = new NpgsqlConnection(connectionString);
        NpgsqlConnection.ClearPool(connection);
    }
}
