using System.Collections.Concurrent;
using EfReplicaInterceptor.HistoryChecker;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace EfReplicaInterceptor.TestSupport.History;

/// <summary>
/// Sessions of three kinds of scope (context lease, ambient scope, user carrying a token) writing their own register with
/// increasing versions and reading it with the shared counters, through real EF contexts and the library; every operation
/// goes into a <see cref="HistoryRecorder"/> with its scope, values, times and the server that ran a read
/// (<c>inet_server_port()</c> in the same query). Judging the history is the checker's business, not this class's.
/// </summary>
public sealed class HistoryWorkload
{
    private readonly DbContextOptions<HistoryContext> _options;
    private readonly HistoryRecorder _recorder;
    private readonly WorkloadSettings _settings;
    private readonly string _prefix;
    private readonly IReadOnlyDictionary<int, string> _serverNames;
    private readonly ConcurrentDictionary<string, int> _errors = new();
    private readonly string[] _counters;

    /// <param name="options">Options of <see cref="HistoryContext"/>, wired to the cluster under test.</param>
    /// <param name="recorder">Where operations go.</param>
    /// <param name="settings">The shape of the run.</param>
    /// <param name="prefix">Prefix of every register this run uses (see <see cref="CreateRegistersAsync"/>), unique per run.</param>
    /// <param name="serverNames">Port to server name, to name the server of each read.</param>
    public HistoryWorkload(DbContextOptions<HistoryContext> options, HistoryRecorder recorder, WorkloadSettings settings, string prefix, IReadOnlyDictionary<int, string> serverNames)
    {
        _options = options;
        _recorder = recorder;
        _settings = settings;
        _prefix = prefix;
        _serverNames = serverNames;
        _counters = [.. Enumerable.Range(0, settings.Counters).Select(i => $"{prefix}:c{i}")];
    }

    /// <summary>Operations that threw, by exception type and message (first line).</summary>
    public IReadOnlyDictionary<string, int> Errors => _errors;

    /// <summary>The table and this run's counters (at 0), created with plain SQL by <paramref name="execute"/> (on the primary).</summary>
    public static async Task CreateRegistersAsync(Func<string, Task> execute, string prefix, int counters)
    {
        ArgumentNullException.ThrowIfNull(execute);
        await execute(HistoryContext.Schema);
        // Committed synchronously whatever the server's setting, so that the primary's write position (what the harness's
        // WaitForReplayAsync waits for) is past the commit: under asynchronous commit it may not be, and a 300 ms-late
        // standby then serves the run's first reads without the counters.
        await execute($"SET synchronous_commit = on; INSERT INTO h_registers (key, value) SELECT '{prefix}:c' || g, 0 FROM generate_series(0, {counters - 1}) g");
    }

    /// <summary>Runs every session until the settings' stop condition (or <paramref name="ct"/>); operations in flight finish.</summary>
    public async Task RunAsync(CancellationToken ct = default)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var started = _recorder.Now;
        var pool = new PooledDbContextFactory<HistoryContext>(_options, poolSize: Math.Max(8, _settings.LeaseSessions * 2));
        var sessions = new List<Task>();
        var seed = _settings.Seed;
        for (var i = 0; i < _settings.LeaseSessions; i++)
        {
            var (number, random) = (i, new Random(seed++));
            sessions.Add(Task.Run(() => LeaseSessionAsync(pool, number, random, stop.Token), CancellationToken.None));
        }

        for (var i = 0; i < _settings.AmbientSessions; i++)
        {
            var (number, random) = (i, new Random(seed++));
            sessions.Add(Task.Run(() => AmbientSessionAsync(number, random, stop.Token), CancellationToken.None));
        }

        for (var i = 0; i < _settings.Users; i++)
        {
            var (number, random) = (i, new Random(seed++));
            sessions.Add(Task.Run(() => UserSessionAsync(number, random, stop.Token), CancellationToken.None));
        }

        if (_settings.CounterWriteInterval > TimeSpan.Zero)
        {
            var random = new Random(seed);
            sessions.Add(Task.Run(() => CounterWriterAsync(random, stop.Token), CancellationToken.None));
        }

        while (!stop.IsCancellationRequested)
        {
            var elapsed = _recorder.Now - started;
            if ((elapsed >= _settings.Duration && _recorder.Count >= _settings.MinimumOperations) || elapsed >= _settings.MaximumDuration)
            {
                await stop.CancelAsync();
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        }

        await Task.WhenAll(sessions);
        ct.ThrowIfCancellationRequested();
    }

    private async Task LeaseSessionAsync(PooledDbContextFactory<HistoryContext> pool, int number, Random random, CancellationToken stop)
    {
        for (var lease = 1; !stop.IsCancellationRequested; lease++)
        {
            await using var context = pool.CreateDbContext();
            var session = new Session($"lease:{number}.{lease}", $"{_prefix}:lease:{number}.{lease}", random);
            var operations = random.Next(4, 17);
            for (var i = 0; i < operations && !stop.IsCancellationRequested; i++)
            {
                await OperationAsync(context, session);
            }
        }
    }

    private async Task AmbientSessionAsync(int number, Random random, CancellationToken stop)
    {
        for (var scope = 1; !stop.IsCancellationRequested; scope++)
        {
            using var consistency = EfReplicaScope.BeginConsistency();
            var session = new Session($"ambient:{number}.{scope}", $"{_prefix}:ambient:{number}.{scope}", random);
            var operations = random.Next(4, 17);
            for (var i = 0; i < operations && !stop.IsCancellationRequested; i++)
            {
                await using var context = new HistoryContext(_options);
                await OperationAsync(context, session);
            }
        }
    }

    private async Task UserSessionAsync(int number, Random random, CancellationToken stop)
    {
        var session = new Session($"user:{number}", $"{_prefix}:user:{number}", random);
        string? token = null;
        while (!stop.IsCancellationRequested)
        {
            using var request = EfReplicaScope.BeginConsistency(token);
            await using (var context = new HistoryContext(_options))
            {
                var operations = random.Next(1, 4);
                for (var i = 0; i < operations && !stop.IsCancellationRequested; i++)
                {
                    await OperationAsync(context, session);
                }

                // A request that ends with a write has not read it back yet; the next request must.
            }

            try
            {
                token = await request.GetTokenAsync();
            }
#pragma warning disable CA1031 // The workload records every failure and goes on; the report counts them.
            catch (Exception error)
#pragma warning restore CA1031
            {
                CountError("GetTokenAsync", error);
            }
        }
    }

    private async Task CounterWriterAsync(Random random, CancellationToken stop)
    {
        var session = new Session("writer", ownKey: null, random);
        var next = 0;
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(_settings.CounterWriteInterval, CancellationToken.None);
            await using var context = new HistoryContext(_options);
            await WriteAsync(context, session, _counters[next++ % _counters.Length]);
        }
    }

    private async Task OperationAsync(HistoryContext context, Session session)
    {
        if (session.JustWrote || session.Random.NextDouble() >= _settings.WriteShare)
        {
            if (!session.JustWrote && _settings.ThinkTime > TimeSpan.Zero)
            {
                await Task.Delay(session.Random.Next((int)_settings.ThinkTime.TotalMilliseconds + 1));
            }

            session.JustWrote = false;
            await ReadAsync(context, session);
            return;
        }

        session.JustWrote = true;
        await WriteAsync(context, session, session.Random.Next(3) == 0 ? null : _counters[session.Random.Next(_counters.Length)]);
    }

    private async Task ReadAsync(HistoryContext context, Session session)
    {
        string[] keys = [session.OwnKey!, .. _counters];
        var start = _recorder.Now;
        try
        {
            List<RegisterRead> rows;
            var shape = session.Random.Next(2) == 0 ? "LINQ" : "raw SQL";
            if (shape == "LINQ")
            {
                rows = await context.Registers.AsNoTracking()
                    .Where(r => keys.Contains(r.Key))
                    .Select(r => new RegisterRead { Key = r.Key, Value = r.Value, Port = HistoryContext.ServerPort() })
                    .ToListAsync();
            }
            else
            {
                rows = await context.Database
                    .SqlQuery<RegisterRead>($"SELECT key AS \"Key\", value AS \"Value\", inet_server_port() AS \"Port\" FROM h_registers WHERE key = ANY({keys})")
                    .ToListAsync();
            }

            if (rows.Count < _counters.Length)
            {
                // The counters exist on every server before the run starts: a read without them is an anomaly of its own.
                _errors.AddOrUpdate($"read: {rows.Count} of the {_counters.Length} counters returned ({(rows.Count == 0 ? "no row at all" : "some")}, {shape}) at {start.TotalMilliseconds:0} ms", 1, (_, count) => count + 1);
            }

            var values = keys.ToDictionary(key => key, key => rows.FirstOrDefault(r => r.Key == key)?.Value ?? 0);
            var server = rows.Count == 0 ? null : _serverNames.GetValueOrDefault(rows[0].Port, $"port {rows[0].Port}");
            _recorder.Record(session.Scope, OperationKind.Read, values, start, server: server);
        }
#pragma warning disable CA1031 // recorded as a failed operation and counted
        catch (Exception error)
#pragma warning restore CA1031
        {
            _recorder.Record(session.Scope, OperationKind.Read, new Dictionary<string, long>(), start, OperationOutcome.Failed);
            CountError("read", error);
        }
    }

    /// <summary>Writes the session's own register (next version) unless it has none, and increments <paramref name="counter"/> when given.</summary>
    private async Task WriteAsync(HistoryContext context, Session session, string? counter)
    {
        var values = new Dictionary<string, long>();
        var start = _recorder.Now;
        try
        {
            var setLocal = _settings.Commit == WriteCommit.SetLocalOff;
            await using var transaction = setLocal || session.Random.Next(4) == 0 ? await context.Database.BeginTransactionAsync() : null;
            if (setLocal)
            {
                await context.Database.ExecuteSqlRawAsync("SET LOCAL synchronous_commit = off");
            }

            if (session.OwnKey is { } own)
            {
                var version = ++session.Version;
                await WriteOwnAsync(context, session, own, version);
                values[own] = version;
            }

            if (counter is not null)
            {
                // Raw SQL that writes and returns: the counter's new value, from the primary.
                var row = await context.Registers
                    .FromSql($"UPDATE h_registers SET value = value + 1 WHERE key = {counter} RETURNING key, value")
                    .AsNoTracking()
                    .ToListAsync();
                values[counter] = row.Single().Value;
            }

            if (transaction is not null)
            {
                await transaction.CommitAsync();
            }

            _recorder.Record(session.Scope, OperationKind.Write, values, start, server: "primary");
        }
#pragma warning disable CA1031 // recorded as a failed operation and counted
        catch (Exception error)
#pragma warning restore CA1031
        {
            session.OwnExists = null;
            _recorder.Record(session.Scope, OperationKind.Write, values, start, OperationOutcome.Failed);
            CountError("write", error);
        }
        finally
        {
            context.ChangeTracker.Clear();
        }
    }

    private static async Task WriteOwnAsync(HistoryContext context, Session session, string own, long version)
    {
        switch (session.OwnExists)
        {
            case false:
                context.Registers.Add(new Register { Key = own, Value = version });
                await context.SaveChangesAsync();
                break;
            case null:
                // After a failed write the row may or may not exist.
                await context.Database.ExecuteSqlAsync($"INSERT INTO h_registers (key, value) VALUES ({own}, {version}) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value");
                break;
            default:
                if (session.Random.Next(2) == 0)
                {
                    context.Registers.Update(new Register { Key = own, Value = version });
                    await context.SaveChangesAsync();
                }
                else
                {
                    await context.Registers.Where(r => r.Key == own).ExecuteUpdateAsync(setters => setters.SetProperty(r => r.Value, version));
                }

                break;
        }

        session.OwnExists = true;
    }

    private void CountError(string what, Exception error)
    {
        var message = error.GetBaseException().Message.Split('\n')[0];
        _errors.AddOrUpdate($"{what}: {error.GetType().Name}: {message}", 1, (_, count) => count + 1);
    }

    private sealed class Session(string scope, string? ownKey, Random random)
    {
        public string Scope { get; } = scope;

        /// <summary>The session's own register; null for the counter writer.</summary>
        public string? OwnKey { get; } = ownKey;

        public Random Random { get; } = random;

        public long Version { get; set; }

        /// <summary>False before the first write, true after a successful one, null when a write failed (the row may exist).</summary>
        public bool? OwnExists { get; set; } = false;

        public bool JustWrote { get; set; }
    }
}
