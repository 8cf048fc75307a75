using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using EfReplicaInterceptor.Testing.Internal;
using Npgsql;

namespace EfReplicaInterceptor.Testing;

/// <summary>
/// A real Patroni cluster on loopback for tests: one etcd 3.4 member as the distributed configuration store and Patroni
/// members, each managing its own PostgreSQL server, with the operations an HA manager's users perform (switchover,
/// failover by a dead node, members stopped, started, added, tagged) and waits for their outcome. Start one with
/// <see cref="StartAsync"/>; dispose it to kill every process it started and delete its files.
/// </summary>
/// <remarks>
/// <para>
/// The programs come from <see cref="PatroniPrograms"/> (Debian's <c>patroni</c>, <c>etcd-server</c> and <c>python3-etcd</c>,
/// installed by <c>build/ensure-patroni.sh</c>), PostgreSQL from <see cref="PostgresBinaries.Locate()"/>. Patroni talks to etcd
/// through its v3 API (<c>etcd3:</c>). Everything listens on 127.0.0.1 on free ports, lives in a fresh folder under
/// <c>/tmp/efreplica-patroni</c> (each member's data directory, <c>&lt;member&gt;.yml</c> configuration and <c>&lt;member&gt;.log</c>,
/// which holds PostgreSQL's messages too; <c>etcd.log</c>) and, when this process is root, runs as the unprivileged user the
/// other harness servers run as (Patroni and PostgreSQL refuse root).
/// </para>
/// <para>
/// Patroni settings: <c>ttl</c> 10 s, <c>loop_wait</c> 1 s, <c>retry_timeout</c> 4 s (see <see cref="PatroniClusterOptions"/>), a
/// generous <c>maximum_lag_on_failover</c> (1 GiB), replication slots, <c>use_pg_rewind</c> with
/// <c>remove_data_directory_on_rewind_failure</c> so that a failed old leader rejoins as a replica. PostgreSQL runs with
/// <c>fsync = off</c>, <c>hot_standby_feedback = on</c>, <c>wal_log_hints = on</c>.
/// </para>
/// <para>
/// Patroni resumes a replica's paused WAL replay (<c>pg_wal_replay_pause()</c>) within one <c>loop_wait</c> on PostgreSQL 14+,
/// so a member is made to lag with <see cref="SetReplayDelayAsync"/> (<c>recovery_min_apply_delay</c> through its configuration).
/// </para>
/// <para>
/// Clusters whose owning process died (a crashed test run) have their processes killed and folders removed by the next
/// <see cref="StartAsync"/>; live ones are disposed when the process exits normally.
/// </para>
/// </remarks>
public sealed class PatroniCluster : IAsyncDisposable
{
    /// <summary>The superuser every member's <see cref="PatroniMember.ConnectionString"/> names: <c>efreplica</c>.</summary>
    public const string UserName = ServerConfiguration.UserName;

    /// <summary>Patroni's replication user: <c>replicator</c>.</summary>
    public const string ReplicationUserName = "replicator";

    /// <summary>The cluster's Patroni <c>scope</c> (its name in etcd): <c>efreplica</c>.</summary>
    public const string Scope = "efreplica";

    private const string ReplicationPassword = "efreplica-replication-password";
    private const int MaxMembers = 9;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);
    private static readonly ConcurrentDictionary<PatroniCluster, byte> LiveClusters = new();
    private static readonly HttpClient Http = new(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromSeconds(30) })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private readonly PgTools _tools;
    private readonly PatroniPrograms _programs;
    private readonly PatroniClusterOptions _options;
    private readonly string _directory;
    private readonly Lock _gate = new();
    private readonly List<int> _ports = [];
    private readonly SemaphoreSlim _operations = new(1, 1);
    private ReadOnlyCollection<PatroniMember> _members = ReadOnlyCollection<PatroniMember>.Empty;
    private DaemonProcess? _etcd;
    private int _etcdClientPort;
    private int _lastMemberNumber;
    private string? _lastLeader;
    private PatroniClusterState? _lastState;
    private Task? _disposal;

    static PatroniCluster()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => DisposeLiveClustersAtExit();
    }

    private PatroniCluster(PgTools tools, PatroniPrograms programs, PatroniClusterOptions options, string directory)
    {
        _tools = tools;
        _programs = programs;
        _options = options;
        _directory = directory;
    }

    /// <summary>Every member in the order they were created (<c>member1</c>, <c>member2</c>, …), running or not.</summary>
    public IReadOnlyList<PatroniMember> Members
    {
        get
        {
            lock (_gate)
            {
                return _members;
            }
        }
    }

    /// <summary>The members' Patroni REST API base URLs, in <see cref="Members"/> order: what a Patroni topology source lists.</summary>
    public IReadOnlyList<Uri> RestApiEndpoints => [.. Members.Select(member => member.RestApiUrl)];

    /// <summary>
    /// How long each stage of <see cref="StartAsync"/> took, in order: <c>etcd healthy</c>, <c>leader writable</c> (Patroni started,
    /// one member ran initdb and took the leader key), <c>database created</c>, <c>replicas streaming</c> (the others copied the
    /// leader and stream).
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, TimeSpan>> StartupStages { get; private set; } = [];

    /// <summary>etcd's client URL (<c>http://127.0.0.1:&lt;port&gt;</c>).</summary>
    public Uri EtcdUrl => new(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{_etcdClientPort}"));

    /// <summary>The cluster's folder under <c>/tmp/efreplica-patroni</c>.</summary>
    public string Directory => _directory;

    /// <summary>
    /// A multi-host Npgsql connection string over every member (in <see cref="Members"/> order) with
    /// <c>Target Session Attributes=primary</c>: Npgsql connects to whichever member leads. Treat it as a secret.
    /// </summary>
    public string MultiHostConnectionString =>
        new NpgsqlConnectionStringBuilder(Members[0].ConnectionString)
        {
            Host = string.Join(',', Members.Select(member => string.Create(CultureInfo.InvariantCulture, $"{member.Host}:{member.Port}"))),
            TargetSessionAttributes = "primary",
        }.ConnectionString;

    /// <summary>
    /// Starts etcd and <paramref name="members"/> Patroni members, and returns once one member leads (and answers writes) and every
    /// other one is a running replica whose WAL receiver streams from it. On failure everything started is killed and removed.
    /// </summary>
    /// <param name="members">How many members, 1 to 9; default 3.</param>
    /// <param name="options">Settings; defaults when null.</param>
    /// <param name="cancellationToken">Cancels the start (what was started is cleaned up).</param>
    /// <returns>The running cluster; dispose it.</returns>
    /// <exception cref="InvalidOperationException">Patroni or etcd is not installed (the message names <see cref="PatroniPrograms.InstallScript"/>), or a process could not start; the message has its log's last lines.</exception>
    /// <exception cref="PostgresBinariesNotFoundException">PostgreSQL is not installed.</exception>
    /// <exception cref="TimeoutException">The cluster was not ready within <see cref="PatroniClusterOptions.OperationTimeout"/>; the message has the last cluster state and the logs' last lines.</exception>
    public static async Task<PatroniCluster> StartAsync(int members = 3, PatroniClusterOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(members, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(members, MaxMembers);
        var validated = (options ?? new PatroniClusterOptions()).Validated();
        var programs = PatroniPrograms.Locate();
        var tools = await PgTools.GetAsync(cancellationToken).ConfigureAwait(false);
        await HarnessDirectories.CleanUpAbandonedSetsAsync(tools, cancellationToken, HarnessDirectories.PatroniRoot).ConfigureAwait(false);

        var cluster = new PatroniCluster(tools, programs, validated, HarnessDirectories.CreateSetDirectory(tools.RunAsUser is not null, HarnessDirectories.PatroniRoot));
        LiveClusters.TryAdd(cluster, 0);
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var stages = new List<KeyValuePair<string, TimeSpan>>();
            void Stage(string name)
            {
                stages.Add(new(name, clock.Elapsed));
                clock.Restart();
            }

            await cluster.StartEtcdAsync(cancellationToken).ConfigureAwait(false);
            Stage("etcd healthy");
            var created = Enumerable.Range(0, members).Select(_ => cluster.CreateMember()).ToList();
            foreach (var member in created)
            {
                cluster.StartPatroni(member);
            }

            var leader = await cluster.WaitForLeaderAsync(null, cancellationToken).ConfigureAwait(false);
            Stage("leader writable");
            await cluster.CreateDatabaseAsync(leader, cancellationToken).ConfigureAwait(false);
            Stage("database created");
            await cluster.WaitForHealthyAsync(null, cancellationToken).ConfigureAwait(false);
            Stage("replicas streaming");
            cluster.StartupStages = stages.AsReadOnly();
            return cluster;
        }
        catch
        {
            try
            {
                await cluster.DisposeAsync().ConfigureAwait(false);
            }
            catch (InvalidOperationException)
            {
                // The start failure is what the caller needs to see; leftovers are removed by the next StartAsync.
            }

            throw;
        }
    }

    /// <summary>The member named <paramref name="name"/>.</summary>
    /// <param name="name">Its Patroni name.</param>
    /// <returns>The member.</returns>
    /// <exception cref="ArgumentException">No member has that name.</exception>
    public PatroniMember Member(string name) =>
        Members.FirstOrDefault(member => member.Name == name)
        ?? throw new ArgumentException($"The cluster has no member named '{name}' (members: {string.Join(", ", Members.Select(member => member.Name))}).", nameof(name));

    /// <summary>
    /// <c>GET /cluster</c> from the members' REST APIs, tried in turn (the last known leader first, then the others) until one
    /// answers: the leader, each member's role, state, host, port, timeline, lag and tags.
    /// </summary>
    /// <param name="ct">Cancels the request.</param>
    /// <returns>The cluster as Patroni reports it.</returns>
    /// <exception cref="InvalidOperationException">No member's REST API answered; the message has each error.</exception>
    public async Task<PatroniClusterState> GetClusterAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        var errors = new List<string>();
        var lastLeader = _lastLeader;
        foreach (var member in Members.OrderBy(member => member.Name == lastLeader ? 0 : member.IsRunning ? 1 : 2))
        {
            var url = new Uri(member.RestApiUrl, "cluster");
            try
            {
                using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
                limit.CancelAfter(RequestTimeout);
                using var response = await Http.GetAsync(url, limit.Token).ConfigureAwait(false);
                var body = await response.Content.ReadAsStringAsync(limit.Token).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    errors.Add(string.Create(CultureInfo.InvariantCulture, $"{url}: HTTP {(int)response.StatusCode}"));
                    continue;
                }

                var state = PatroniClusterState.Parse(body, url);
                _lastState = state;
                if (state.Leader is { } leader)
                {
                    _lastLeader = leader.Name;
                }

                return state;
            }
            catch (Exception exception) when (exception is HttpRequestException or JsonException or IOException
                                              || (exception is OperationCanceledException && !ct.IsCancellationRequested))
            {
                errors.Add($"{url}: {exception.GetType().Name}: {exception.Message}");
            }
        }

        throw new InvalidOperationException($"No Patroni REST API answered GET /cluster: {string.Join("; ", errors)}");
    }

    /// <summary>
    /// Waits until Patroni reports a running leader and that member's PostgreSQL answers as a primary
    /// (<c>pg_is_in_recovery()</c> false).
    /// </summary>
    /// <param name="timeout">The limit; <see cref="PatroniClusterOptions.OperationTimeout"/> when null.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The leader.</returns>
    /// <exception cref="TimeoutException">No leader in time; the message has the last cluster state and the logs' last lines.</exception>
    public Task<PatroniMember> WaitForLeaderAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        WaitForLeaderCoreAsync(null, timeout, ct);

    /// <summary>
    /// Waits until a member other than <paramref name="formerLeader"/> leads and answers writes: the end of a switchover or failover.
    /// </summary>
    /// <param name="formerLeader">The name of the member that led before.</param>
    /// <param name="timeout">The limit; <see cref="PatroniClusterOptions.OperationTimeout"/> when null.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The new leader.</returns>
    /// <exception cref="TimeoutException">No new leader in time; the message has the last cluster state and the logs' last lines.</exception>
    public Task<PatroniMember> WaitForNewLeaderAsync(string formerLeader, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(formerLeader);
        return WaitForLeaderCoreAsync(formerLeader, timeout, ct);
    }

    /// <summary>
    /// Waits until Patroni reports <paramref name="name"/> in <paramref name="role"/> (<c>leader</c>, or <c>replica</c>, which also
    /// matches <c>sync_standby</c>) and <paramref name="state"/> (<c>running</c> also matches <c>streaming</c>).
    /// </summary>
    /// <param name="name">The member.</param>
    /// <param name="role"><c>leader</c> or <c>replica</c>.</param>
    /// <param name="state">Its state; default <c>running</c>.</param>
    /// <param name="timeout">The limit; <see cref="PatroniClusterOptions.OperationTimeout"/> when null.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The member's state once it matches.</returns>
    /// <exception cref="TimeoutException">It did not in time.</exception>
    public Task<PatroniMemberState> WaitForMemberStateAsync(string name, string role, string state = "running", TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var member = Member(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(role);
        ArgumentException.ThrowIfNullOrWhiteSpace(state);
        return WaitForAsync(
            $"member '{name}' to be {role} and {state}",
            async token =>
            {
                var cluster = await GetClusterAsync(token).ConfigureAwait(false);
                var found = cluster.Member(member.Name);
                return found is not null && RoleMatches(found, role) && StateMatches(found, state) ? found : null;
            },
            [member],
            timeout,
            ct);
    }

    /// <summary>
    /// Waits until <paramref name="name"/> is a running replica of the current leader by Patroni's report, on the leader's timeline,
    /// and its WAL receiver streams (<c>pg_stat_wal_receiver.status = 'streaming'</c>, asked on the member).
    /// </summary>
    /// <param name="name">The member.</param>
    /// <param name="timeout">The limit; <see cref="PatroniClusterOptions.OperationTimeout"/> when null.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The member's state once it streams.</returns>
    /// <exception cref="TimeoutException">It did not in time.</exception>
    public Task<PatroniMemberState> WaitForStreamingAsync(string name, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var member = Member(name);
        return WaitForAsync(
            $"member '{name}' to stream from the leader as a running replica",
            async token =>
            {
                var cluster = await GetClusterAsync(token).ConfigureAwait(false);
                return await StreamingReplicaAsync(cluster, member, token).ConfigureAwait(false);
            },
            [member],
            timeout,
            ct);
    }

    /// <summary>
    /// Waits until every member whose Patroni process runs is in place: one leader answering writes, every other one a running,
    /// streaming replica on the leader's timeline.
    /// </summary>
    /// <param name="timeout">The limit; <see cref="PatroniClusterOptions.OperationTimeout"/> when null.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The cluster state once it is healthy.</returns>
    /// <exception cref="TimeoutException">It was not in time.</exception>
    public Task<PatroniClusterState> WaitForHealthyAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var running = Members.Where(member => member.IsRunning).ToList();
        return WaitForAsync(
            $"a leader and {running.Count - 1} streaming replica(s) among {string.Join(", ", running.Select(member => member.Name))}",
            async token =>
            {
                var cluster = await GetClusterAsync(token).ConfigureAwait(false);
                if (cluster.Leader is not { IsRunning: true } leaderState
                    || Members.FirstOrDefault(member => member.Name == leaderState.Name) is not { } leader
                    || await leader.ControlScalarAsync<bool>("SELECT pg_is_in_recovery()", token).ConfigureAwait(false))
                {
                    return null;
                }

                foreach (var member in running.Where(member => member.Name != leaderState.Name))
                {
                    if (await StreamingReplicaAsync(cluster, member, token).ConfigureAwait(false) is null)
                    {
                        return null;
                    }
                }

                return cluster;
            },
            running,
            timeout,
            ct);
    }

    /// <summary>
    /// Rebuilds a replica from the leader (<c>POST /reinitialize</c> with force, what <c>patronictl reinit --force</c> sends) and
    /// waits until it streams again. For a replica that went past the point where a new leader's timeline forked off (a
    /// standby that had received more of the dead leader's WAL than the promoted one): PostgreSQL cannot follow the new
    /// timeline from there ("new timeline forked off current database system timeline before current recovery point"), and
    /// Patroni 3.0 does not rewind a replica that keeps running.
    /// </summary>
    /// <param name="name">The replica.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>Its state once it streams from the leader.</returns>
    /// <exception cref="InvalidOperationException">Patroni refused; the message has its answer.</exception>
    public async Task<PatroniMemberState> ReinitializeAsync(string name, CancellationToken ct = default)
    {
        var member = Member(name);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        var (status, answer) = await PostAsync(member, "reinitialize", "{\"force\": true}", _options.OperationTimeout, ct).ConfigureAwait(false);
        if (status != HttpStatusCode.OK)
        {
            throw new InvalidOperationException(
                string.Create(CultureInfo.InvariantCulture, $"Patroni refused to reinitialize '{name}': HTTP {(int)status} {answer.Trim()}") + HarnessDirectories.LogTail(member.LogFile, 20));
        }

        return await WaitForStreamingAsync(name, null, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// A planned switchover: <c>POST /switchover</c> to the leader's REST API (what <c>patronictl switchover --force</c> sends),
    /// then waits until the new leader answers writes. The old leader goes on as a replica; wait for it with
    /// <see cref="WaitForStreamingAsync"/>.
    /// </summary>
    /// <param name="candidate">The member to lead; null lets Patroni choose among the healthy replicas.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The new leader.</returns>
    /// <exception cref="InvalidOperationException">Patroni refused the switchover; the message has its answer.</exception>
    /// <exception cref="TimeoutException">No new leader within <see cref="PatroniClusterOptions.OperationTimeout"/>.</exception>
    public async Task<PatroniMember> SwitchoverAsync(string? candidate = null, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        if (candidate is not null)
        {
            _ = Member(candidate);
        }

        await _operations.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var cluster = await GetClusterAsync(ct).ConfigureAwait(false);
            var leaderName = cluster.Leader?.Name ?? throw new InvalidOperationException($"Cannot switch over: the cluster has no leader ({cluster}).");
            if (leaderName == candidate)
            {
                throw new ArgumentException($"Cannot switch over to '{candidate}': it leads already.", nameof(candidate));
            }

            var leader = Member(leaderName);
            var body = candidate is null
                ? JsonSerializer.Serialize(new Dictionary<string, string> { ["leader"] = leaderName })
                : JsonSerializer.Serialize(new Dictionary<string, string> { ["leader"] = leaderName, ["candidate"] = candidate });
            const int Attempts = 3;
            for (var attempt = 1; ; attempt++)
            {
                var (status, answer) = await PostAsync(leader, "switchover", body, _options.OperationTimeout, ct).ConfigureAwait(false);

                // "Switchover status unknown": Patroni stopped watching after 20 s (a loaded machine); the outcome is awaited below.
                if (status == HttpStatusCode.OK || answer.Contains("status unknown", StringComparison.OrdinalIgnoreCase))
                {
                    return await WaitForLeaderCoreAsync(leaderName, null, ct).ConfigureAwait(false);
                }

                // "candidate not healthy", "Switchover failed": a replica not ready yet, say. Try again once the cluster is healthy.
                if (attempt == Attempts || (status != HttpStatusCode.ServiceUnavailable && status != HttpStatusCode.PreconditionFailed))
                {
                    throw new InvalidOperationException(
                        string.Create(CultureInfo.InvariantCulture, $"Patroni refused the switchover from '{leaderName}'{(candidate is null ? string.Empty : $" to '{candidate}'")} ({attempt} attempt(s)): HTTP {(int)status} {answer.Trim()}")
                        + HarnessDirectories.LogTail(leader.LogFile, 20));
                }

                var healthy = await WaitForHealthyAsync(null, ct).ConfigureAwait(false);
                if (healthy.Leader?.Name != leaderName)
                {
                    // The leader changed meanwhile: that is the outcome of this switchover after all.
                    return Member(healthy.Leader!.Name);
                }
            }
        }
        finally
        {
            _operations.Release();
        }
    }

    /// <summary>
    /// Kills the leader as a dead node would disappear: SIGKILL to its Patroni process and to its PostgreSQL postmaster, at once.
    /// The leader key stays in etcd until its <c>ttl</c> runs out; then a replica is promoted (wait with
    /// <see cref="WaitForNewLeaderAsync"/>). Start the killed member again with <see cref="StartMemberAsync"/>.
    /// </summary>
    /// <param name="ct">Cancels finding the leader.</param>
    /// <returns>The killed member.</returns>
    /// <exception cref="InvalidOperationException">The cluster has no leader.</exception>
    public async Task<PatroniMember> KillLeaderAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        await _operations.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var cluster = await GetClusterAsync(ct).ConfigureAwait(false);
            var leader = Member(cluster.Leader?.Name ?? throw new InvalidOperationException($"Cannot kill the leader: the cluster has none ({cluster})."));
            await KillAsync(leader, ct).ConfigureAwait(false);
            return leader;
        }
        finally
        {
            _operations.Release();
        }
    }

    /// <summary>
    /// Kills <paramref name="name"/> as a dead node: SIGKILL to its Patroni process and its PostgreSQL postmaster; returns once
    /// both are gone.
    /// </summary>
    /// <param name="name">The member.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>A task that completes when both processes have exited.</returns>
    public async Task KillMemberAsync(string name, CancellationToken ct = default)
    {
        var member = Member(name);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        await _operations.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await KillAsync(member, ct).ConfigureAwait(false);
        }
        finally
        {
            _operations.Release();
        }
    }

    /// <summary>
    /// Stops a member cleanly: SIGTERM to its Patroni process, which stops its PostgreSQL (fast shutdown) and, when it leads,
    /// releases the leader key; waits until both have exited (killing them after <see cref="PatroniClusterOptions.OperationTimeout"/>).
    /// </summary>
    /// <param name="name">The member.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>A task that completes when the member's processes are gone.</returns>
    public async Task StopMemberAsync(string name, CancellationToken ct = default)
    {
        var member = Member(name);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        await _operations.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (member.Daemon is { } daemon)
            {
                daemon.Terminate();
                if (!await daemon.WaitForExitAsync(_options.OperationTimeout, ct).ConfigureAwait(false))
                {
                    daemon.Kill();
                    await daemon.WaitForExitAsync(TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
                }
            }

            if (member.IsPostgresRunning)
            {
                var stop = await _tools.RunAsync(
                    "pg_ctl",
                    ["stop", "-D", member.DataDirectory, "-m", "fast", "-w", "-t", HarnessDirectories.Seconds(_options.OperationTimeout)],
                    _directory,
                    _options.OperationTimeout + TimeSpan.FromSeconds(5),
                    ct).ConfigureAwait(false);
                if (!stop.Succeeded && member.IsPostgresRunning)
                {
                    throw new InvalidOperationException($"Stopping the PostgreSQL server of member '{name}' failed. {stop.Describe()}" + HarnessDirectories.LogTail(member.LogFile, 20));
                }
            }

            member.ClearPool();
        }
        finally
        {
            _operations.Release();
        }
    }

    /// <summary>
    /// Starts a stopped (or killed) member's Patroni again, with the same ports and data directory, and waits until it runs: as a
    /// streaming replica of the current leader (after a rewind, or a fresh copy when the rewind failed), or as the leader when
    /// no other member leads.
    /// </summary>
    /// <param name="name">The member.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The member's state once it runs.</returns>
    /// <exception cref="InvalidOperationException">The member's Patroni runs already.</exception>
    /// <exception cref="TimeoutException">It did not run within <see cref="PatroniClusterOptions.OperationTimeout"/>.</exception>
    public async Task<PatroniMemberState> StartMemberAsync(string name, CancellationToken ct = default)
    {
        var member = Member(name);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        if (member.IsRunning)
        {
            throw new InvalidOperationException($"Member '{name}' runs already.");
        }

        await _operations.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            StartPatroni(member);
        }
        finally
        {
            _operations.Release();
        }

        return await WaitForAsync(
            $"member '{name}' to run again as a streaming replica (or the leader)",
            async token =>
            {
                var cluster = await GetClusterAsync(token).ConfigureAwait(false);
                if (cluster.Leader is { Name: var leaderName } leader && leaderName == name)
                {
                    return leader.IsRunning && !await member.ControlScalarAsync<bool>("SELECT pg_is_in_recovery()", token).ConfigureAwait(false) ? leader : null;
                }

                return await StreamingReplicaAsync(cluster, member, token).ConfigureAwait(false);
            },
            [member],
            null,
            ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds a member: a new Patroni with its own ports and data directory, which copies the leader (<c>pg_basebackup</c>) and
    /// streams from it. Returns once it streams.
    /// </summary>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The new member, appended to <see cref="Members"/>.</returns>
    /// <exception cref="TimeoutException">It did not stream within <see cref="PatroniClusterOptions.OperationTimeout"/>.</exception>
    public async Task<PatroniMember> AddMemberAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        PatroniMember member;
        await _operations.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (Members.Count >= MaxMembers)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"A cluster has at most {MaxMembers} members."));
            }

            member = CreateMember();
            StartPatroni(member);
        }
        finally
        {
            _operations.Release();
        }

        await WaitForStreamingAsync(member.Name, null, ct).ConfigureAwait(false);
        return member;
    }

    /// <summary>
    /// Sets or clears the tag <c>noloadbalance</c> in the member's configuration file, reloads its Patroni (<c>POST /reload</c>) and
    /// waits until <c>GET /cluster</c> shows it.
    /// </summary>
    /// <param name="name">The member.</param>
    /// <param name="noLoadBalance">True to tag it, false to remove the tag.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The member's state once the tag shows.</returns>
    /// <exception cref="TimeoutException">The tag did not show within <see cref="PatroniClusterOptions.OperationTimeout"/>.</exception>
    public async Task<PatroniMemberState> SetNoLoadBalanceAsync(string name, bool noLoadBalance, CancellationToken ct = default)
    {
        var member = Member(name);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        member.NoLoadBalance = noLoadBalance;
        await ReloadAsync(member, ct).ConfigureAwait(false);
        return await WaitForAsync(
            $"member '{name}' to show noloadbalance = {noLoadBalance}",
            async token =>
            {
                var found = (await GetClusterAsync(token).ConfigureAwait(false)).Member(name);
                return found is not null && found.NoLoadBalance == noLoadBalance ? found : null;
            },
            [member],
            null,
            ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes a replica lag for real: sets <c>recovery_min_apply_delay</c> in the member's configuration (Patroni's
    /// <c>postgresql.recovery_conf</c>), reloads its Patroni and waits until the server has the setting. The replica keeps receiving
    /// WAL but applies each transaction only <paramref name="delay"/> after it was committed; <see cref="TimeSpan.Zero"/> ends it.
    /// (<c>pg_wal_replay_pause()</c> does not work under Patroni: it resumes replay within a second.)
    /// </summary>
    /// <param name="name">The member (a replica).</param>
    /// <param name="delay">The apply delay, in whole milliseconds; zero to clear it.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>A task that completes when the server uses the new delay.</returns>
    /// <exception cref="TimeoutException">The server did not take the setting within <see cref="PatroniClusterOptions.OperationTimeout"/>.</exception>
    public async Task SetReplayDelayAsync(string name, TimeSpan delay, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        var member = Member(name);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        member.ReplayDelay = TimeSpan.FromMilliseconds(Math.Floor(delay.TotalMilliseconds));
        await ReloadAsync(member, ct).ConfigureAwait(false);
        var expected = (long)member.ReplayDelay.TotalMilliseconds;
        await WaitForAsync(
            string.Create(CultureInfo.InvariantCulture, $"member '{name}' to use recovery_min_apply_delay = {expected} ms"),
            async token =>
                await member.ControlScalarAsync<string>("SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'", token).ConfigureAwait(false)
                    == expected.ToString(CultureInfo.InvariantCulture)
                    ? member
                    : null,
            [member],
            null,
            ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The memory of every process the cluster runs (etcd, each Patroni, each PostgreSQL server with its children), in bytes:
    /// the sum of their proportional set sizes (<c>Pss</c> in <c>/proc/&lt;pid&gt;/smaps_rollup</c>, which shares PostgreSQL's
    /// shared memory out among the processes that map it instead of counting it once per backend), or of their resident set sizes
    /// (<c>VmRSS</c>) where that is not readable.
    /// </summary>
    /// <returns>The sum in bytes.</returns>
    public long GetMemoryBytes()
    {
        var roots = new List<int>();
        if (_etcd is { IsAlive: true } etcd)
        {
            roots.Add(etcd.ProcessId);
        }

        foreach (var member in Members)
        {
            if (member.Daemon is { IsAlive: true } daemon)
            {
                roots.Add(daemon.ProcessId);
            }

            if (HarnessDirectories.PostmasterProcessId(member.DataDirectory) is { } postmaster && LinuxProcesses.IsPostgres(postmaster))
            {
                roots.Add(postmaster);
            }
        }

        return DaemonProcess.WithDescendants(roots).Sum(DaemonProcess.MemoryBytes);
    }

    /// <summary>
    /// Kills every process the cluster started (Patroni, etcd), stops its PostgreSQL servers (<c>pg_ctl stop -m immediate</c>,
    /// killing the postmaster if that fails) and deletes its folder. Safe to call more than once.
    /// </summary>
    /// <returns>A task that completes when everything is gone.</returns>
    /// <exception cref="InvalidOperationException">A server could not be stopped or the folder not deleted.</exception>
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
        $"Patroni cluster in {_directory}: {string.Join(", ", Members.Select(member => member.ToString()))}" + (_lastState is null ? string.Empty : $"; last seen: {_lastState}");

    private static bool RoleMatches(PatroniMemberState member, string role) =>
        role switch
        {
            "leader" or "primary" or "master" => member.IsLeader,
            "replica" => member.IsReplica,
            _ => member.Role == role,
        };

    private static bool StateMatches(PatroniMemberState member, string state) =>
        state == "running" ? member.IsRunning : member.State == state;

    private static void DisposeLiveClustersAtExit()
    {
        var clusters = LiveClusters.Keys.ToList();
        if (clusters.Count == 0)
        {
            return;
        }

        try
        {
            // Blocking is unavoidable here: the process is exiting and the handler must finish first.
            Task.WhenAll(clusters.Select(cluster => cluster.DisposeAsync().AsTask())).Wait(TimeSpan.FromSeconds(20));
        }
        catch (AggregateException)
        {
            // Leftovers are removed by the next StartAsync.
        }
    }

    private async Task<PatroniMember> WaitForLeaderCoreAsync(string? formerLeader, TimeSpan? timeout, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        return await WaitForAsync(
            formerLeader is null ? "a leader that answers writes" : $"a new leader other than '{formerLeader}' that answers writes",
            async token =>
            {
                var cluster = await GetClusterAsync(token).ConfigureAwait(false);
                if (cluster.Leader is not { IsRunning: true } leaderState
                    || leaderState.Name == formerLeader
                    || Members.FirstOrDefault(member => member.Name == leaderState.Name) is not { } leader)
                {
                    return null;
                }

                return await leader.ControlScalarAsync<bool>("SELECT pg_is_in_recovery()", token, maintenanceDatabase: true).ConfigureAwait(false) ? null : leader;
            },
            Members.Where(member => member.IsRunning).ToList(),
            timeout,
            ct).ConfigureAwait(false);
    }

    /// <summary>The member's state when Patroni reports it as a running replica on the leader's timeline and its WAL receiver streams; else null.</summary>
    private static async Task<PatroniMemberState?> StreamingReplicaAsync(PatroniClusterState cluster, PatroniMember member, CancellationToken ct)
    {
        var found = cluster.Member(member.Name);
        if (found is not { IsReplica: true, IsRunning: true }
            || cluster.Leader is not { IsRunning: true } leader
            || (found.Timeline is { } timeline && leader.Timeline is { } leaderTimeline && timeline != leaderTimeline))
        {
            return null;
        }

        var receiver = await member.ControlScalarAsync<string?>("SELECT status FROM pg_stat_wal_receiver", ct).ConfigureAwait(false);
        return receiver == "streaming" ? found : null;
    }

    /// <summary>
    /// Polls <paramref name="probe"/> until it returns a value. Errors (a REST API or server that does not answer) count as "not
    /// yet"; a watched member whose Patroni process exits fails the wait at once, with its log.
    /// </summary>
    private async Task<T> WaitForAsync<T>(
        string waitingFor,
        Func<CancellationToken, Task<T?>> probe,
        IReadOnlyList<PatroniMember> watched,
        TimeSpan? timeout,
        CancellationToken ct)
        where T : class
    {
        var limit = timeout ?? _options.OperationTimeout;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(limit);
        var watchedRunning = watched.Where(member => member.Daemon is { IsAlive: true }).Select(member => (Member: member, Daemon: member.Daemon!)).ToList();
        Exception? lastError = null;
        try
        {
            while (true)
            {
                try
                {
                    if (await probe(deadline.Token).ConfigureAwait(false) is { } result)
                    {
                        return result;
                    }

                    lastError = null;
                }
                catch (Exception exception) when ((exception is NpgsqlException or IOException or InvalidOperationException or HttpRequestException or JsonException
                                                   || exception is OperationCanceledException) && !deadline.IsCancellationRequested)
                {
                    lastError = exception;
                }

                foreach (var (member, daemon) in watchedRunning)
                {
                    if (!daemon.IsAlive && ReferenceEquals(member.Daemon, daemon))
                    {
                        throw new InvalidOperationException(
                            $"While waiting for {waitingFor}, the Patroni process of member '{member.Name}' exited."
                            + HarnessDirectories.LogTail(member.LogFile, 40));
                    }
                }

                await Task.Delay(PollInterval, deadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            var logs = new StringBuilder();
            foreach (var member in watched.Count > 0 ? watched : Members)
            {
                logs.Append(HarnessDirectories.LogTail(member.LogFile, 15));
            }

            if (_etcd is not null && !_etcd.IsAlive)
            {
                logs.Append(HarnessDirectories.LogTail(_etcd.LogFile, 15));
            }

            throw new TimeoutException(
                string.Create(CultureInfo.InvariantCulture, $"Patroni cluster: timed out after {limit.TotalSeconds:0.#} s waiting for {waitingFor}.")
                + (_lastState is null ? " No /cluster answer yet." : $" Last /cluster: {_lastState}.")
                + (lastError is null ? string.Empty : $" Last error: {lastError.GetType().Name}: {lastError.Message}")
                + logs,
                lastError);
        }
    }

    private async Task StartEtcdAsync(CancellationToken ct)
    {
        _etcdClientPort = ReservePort();
        var peerPort = ReservePort();
        var client = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{_etcdClientPort}");
        var peer = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{peerPort}");
        _etcd = DaemonProcess.Start(
            "etcd",
            _programs.Etcd,
            [
                "--name", "etcd",
                "--data-dir", Path.Combine(_directory, "etcd"),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", $"etcd={peer}",
                "--initial-cluster-state", "new",
                "--initial-cluster-token", Path.GetFileName(_directory),
            ],
            _tools.RunAsUser,
            _directory,
            Path.Combine(_directory, "etcd.log"));

        var health = new Uri($"{client}/health");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_options.OperationTimeout);
        string? lastError = null;
        try
        {
            while (true)
            {
                if (!_etcd.IsAlive)
                {
                    throw new InvalidOperationException($"etcd exited right after its start (client port {_etcdClientPort}, peer port {peerPort})." + HarnessDirectories.LogTail(_etcd.LogFile));
                }

                try
                {
                    using var request = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                    request.CancelAfter(RequestTimeout);
                    var body = await Http.GetStringAsync(health, request.Token).ConfigureAwait(false);
                    if (body.Contains("\"health\":\"true\"", StringComparison.Ordinal))
                    {
                        return;
                    }

                    lastError = body;
                }
                catch (Exception exception) when ((exception is HttpRequestException || exception is OperationCanceledException) && !deadline.IsCancellationRequested)
                {
                    lastError = exception.Message;
                }

                await Task.Delay(PollInterval, deadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException(
                string.Create(CultureInfo.InvariantCulture, $"etcd did not report healthy on {health} within {_options.OperationTimeout.TotalSeconds:0.#} s. Last answer: {lastError}")
                + HarnessDirectories.LogTail(_etcd.LogFile));
        }
    }

    private PatroniMember CreateMember()
    {
        var name = string.Create(CultureInfo.InvariantCulture, $"member{Interlocked.Increment(ref _lastMemberNumber)}");
        var member = new PatroniMember(name, ReservePort(), ReservePort(), _options.DatabaseName, _directory, _tools, _options.OperationTimeout);
        lock (_gate)
        {
            _members = Array.AsReadOnly([.. _members, member]);
        }

        return member;
    }

    private void StartPatroni(PatroniMember member)
    {
        WriteConfiguration(member);
        var previous = member.Daemon;
        member.Daemon = DaemonProcess.Start(member.Name, _programs.Patroni, [member.ConfigurationFile], _tools.RunAsUser, _directory, member.LogFile);
        previous?.Dispose();
    }

    /// <summary>SIGKILL to the member's Patroni and postmaster (Patroni first: it would restart the postmaster), then waits until both are gone.</summary>
    private async Task KillAsync(PatroniMember member, CancellationToken ct)
    {
        member.Daemon?.Kill();
        var postmaster = HarnessDirectories.PostmasterProcessId(member.DataDirectory) is { } id && LinuxProcesses.IsPostgres(id) ? id : (int?)null;
        if (postmaster is { } running)
        {
            DaemonProcess.KillProcess(running, null);
        }

        member.ClearPool();
        if (member.Daemon is { } daemon && !await daemon.WaitForExitAsync(_options.OperationTimeout, ct).ConfigureAwait(false))
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"The Patroni process of member '{member.Name}' (pid {daemon.ProcessId}) survived SIGKILL."));
        }

        await WaitForAsync(
            $"the postmaster of member '{member.Name}' to exit after SIGKILL",
            _ => Task.FromResult(postmaster is null || !LinuxProcesses.IsAlive(postmaster.Value) || !LinuxProcesses.IsPostgres(postmaster.Value) ? member : null),
            [],
            null,
            ct).ConfigureAwait(false);
    }

    private async Task ReloadAsync(PatroniMember member, CancellationToken ct)
    {
        WriteConfiguration(member);
        try
        {
            var (status, _) = await PostAsync(member, "reload", string.Empty, RequestTimeout, ct).ConfigureAwait(false);
            if (status is HttpStatusCode.OK or HttpStatusCode.Accepted)
            {
                return;
            }
        }
        catch (Exception exception) when (exception is HttpRequestException || (exception is OperationCanceledException && !ct.IsCancellationRequested))
        {
            // Fall back to the signal below.
        }

        member.Daemon?.Reload();
    }

    private static async Task<(HttpStatusCode Status, string Body)> PostAsync(PatroniMember member, string path, string body, TimeSpan timeout, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await Http.PostAsync(new Uri(member.RestApiUrl, path), content, limit.Token).ConfigureAwait(false);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(limit.Token).ConfigureAwait(false));
    }

    private async Task CreateDatabaseAsync(PatroniMember leader, CancellationToken ct)
    {
        if (_options.DatabaseName == "postgres")
        {
            return;
        }

        var connection = new NpgsqlConnection(leader.MaintenanceConnectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            var exists = await PostgresServer.ScalarOnAsync<bool>(
                connection,
                $"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{_options.DatabaseName.Replace("'", "''", StringComparison.Ordinal)}')",
                ct).ConfigureAwait(false);
            if (!exists)
            {
                var command = new NpgsqlCommand($"CREATE DATABASE \"{_options.DatabaseName}\"", connection);
                await using (command.ConfigureAwait(false))
                {
                    await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Writes the member's Patroni configuration (YAML is a superset of JSON, so it is written as JSON).</summary>
    private void WriteConfiguration(PatroniMember member)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("scope", Scope);
            json.WriteString("namespace", "/efreplica/");
            json.WriteString("name", member.Name);

            json.WriteStartObject("log");
            json.WriteString("level", "INFO");
            json.WriteEndObject();

            json.WriteStartObject("restapi");
            json.WriteString("listen", Address(member.RestApiPort));
            json.WriteString("connect_address", Address(member.RestApiPort));
            json.WriteEndObject();

            json.WriteStartObject("etcd3");
            json.WriteString("hosts", Address(_etcdClientPort));
            json.WriteString("protocol", "http");
            json.WriteEndObject();

            json.WriteStartObject("bootstrap");
            json.WriteStartObject("dcs");
            json.WriteNumber("ttl", (long)_options.TimeToLive.TotalSeconds);
            json.WriteNumber("loop_wait", (long)_options.LoopWait.TotalSeconds);
            json.WriteNumber("retry_timeout", (long)_options.RetryTimeout.TotalSeconds);
            json.WriteNumber("maximum_lag_on_failover", 1L << 30);
            json.WriteStartObject("postgresql");
            json.WriteBoolean("use_pg_rewind", true);
            json.WriteBoolean("use_slots", true);
            json.WriteStartObject("parameters");
            json.WriteString("wal_level", "replica");
            json.WriteString("hot_standby", "on");
            json.WriteString("hot_standby_feedback", "on");
            json.WriteString("wal_log_hints", "on");
            json.WriteNumber("max_wal_senders", 20);
            json.WriteNumber("max_replication_slots", 20);
            json.WriteString("wal_keep_size", "256MB");
            json.WriteNumber("max_connections", _options.MaxConnections);
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteStartArray("initdb");
            json.WriteStringValue("no-sync");
            json.WriteStartObject();
            json.WriteString("encoding", "UTF8");
            json.WriteEndObject();
            json.WriteStartObject();
            json.WriteString("locale", "C");
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();

            json.WriteStartObject("postgresql");
            json.WriteString("listen", Address(member.Port));
            json.WriteString("connect_address", Address(member.Port));
            json.WriteString("data_dir", member.DataDirectory);
            json.WriteString("bin_dir", _tools.BinDirectory);
            json.WriteString("pgpass", member.PasswordFile);
            json.WriteBoolean("remove_data_directory_on_rewind_failure", true);
            json.WriteBoolean("remove_data_directory_on_diverged_timelines", true);

            // A new replica's copy: checkpoint at once rather than spread, no fsync, no manifest (test data is disposable).
            json.WriteStartArray("basebackup");
            json.WriteStartObject();
            json.WriteString("checkpoint", "fast");
            json.WriteEndObject();
            json.WriteStringValue("no-sync");
            json.WriteStringValue("no-manifest");
            json.WriteEndArray();
            json.WriteStartObject("authentication");
            json.WriteStartObject("superuser");
            json.WriteString("username", ServerConfiguration.UserName);
            json.WriteString("password", ServerConfiguration.Password);
            json.WriteEndObject();
            json.WriteStartObject("replication");
            json.WriteString("username", ReplicationUserName);
            json.WriteString("password", ReplicationPassword);
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteStartObject("parameters");
            json.WriteString("unix_socket_directories", _directory);
            json.WriteString("fsync", "off");
            json.WriteString("wal_receiver_status_interval", "1s");
            json.WriteString("wal_retrieve_retry_interval", "1s");
            json.WriteString("log_line_prefix", "%m [%p] %q%a ");
            json.WriteEndObject();
            json.WriteStartObject("recovery_conf");
            json.WriteString("recovery_min_apply_delay", string.Create(CultureInfo.InvariantCulture, $"{(long)member.ReplayDelay.TotalMilliseconds}ms"));
            json.WriteEndObject();
            json.WriteStartArray("pg_hba");
            json.WriteStringValue("local all all trust");
            json.WriteStringValue("local replication all trust");
            json.WriteStringValue("host all all 127.0.0.1/32 scram-sha-256");
            json.WriteStringValue("host replication all 127.0.0.1/32 scram-sha-256");
            json.WriteEndArray();
            json.WriteEndObject();

            json.WriteStartObject("tags");
            json.WriteBoolean("noloadbalance", member.NoLoadBalance);
            json.WriteEndObject();

            json.WriteEndObject();
        }

        // Replace atomically: Patroni may read the file at any time (a reload, its own periodic check).
        var temporary = member.ConfigurationFile + ".tmp";
        File.WriteAllBytes(temporary, buffer.ToArray());
        File.Move(temporary, member.ConfigurationFile, overwrite: true);

        static string Address(int port) => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{port}");
    }

    private int ReservePort()
    {
        var port = FreePorts.Reserve();
        lock (_gate)
        {
            _ports.Add(port);
        }

        return port;
    }

    private async Task DisposeCoreAsync()
    {
        LiveClusters.TryRemove(this, out _);

        // The Patroni processes first: they would restart the servers stopped below.
        var daemons = Members.Select(member => member.Daemon).Append(_etcd).OfType<DaemonProcess>().ToList();
        foreach (var daemon in daemons)
        {
            daemon.Kill();
        }

        foreach (var member in Members)
        {
            member.ClearPool();
        }

        foreach (var daemon in daemons)
        {
            await daemon.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        }

        var failures = await HarnessDirectories.StopServersUnderAsync(_directory, _tools, TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
        var stillRunning = daemons.Where(daemon => daemon.IsAlive).Select(daemon => string.Create(CultureInfo.InvariantCulture, $"{daemon.Name} (pid {daemon.ProcessId})")).ToList();
        foreach (var daemon in daemons)
        {
            daemon.Dispose();
        }

        lock (_gate)
        {
            _ports.ForEach(FreePorts.Release);
            _ports.Clear();
        }

        var deleted = HarnessDirectories.TryDelete(_directory);
        if (failures.Count > 0 || stillRunning.Count > 0 || !deleted)
        {
            throw new InvalidOperationException(
                $"Disposing the Patroni cluster in {_directory} was incomplete."
                + (stillRunning.Count > 0 ? $" Processes still running: {string.Join(", ", stillRunning)}." : string.Empty)
                + (failures.Count > 0 ? $" Servers still running: {string.Join("; ", failures)}." : string.Empty)
                + (deleted ? string.Empty : $" The folder {_directory} could not be deleted."));
        }
    }
}
