using EfReplicaInterceptor.HistoryChecker;
using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.TestSupport.History;

/// <summary>
/// One primary and two streaming standbys shared by every cell of the history matrix: each cell reloads the settings it needs
/// (<c>synchronous_commit</c> on the primary, <c>recovery_min_apply_delay</c> on the standbys), builds a cluster over the
/// standbys it reads from, runs the workload with its disturbance, and hands the history to the checker.
/// </summary>
public sealed class HistoryMatrix : IAsyncDisposable
{
    private readonly Dictionary<int, string> _serverNames;

    private HistoryMatrix(PostgresReplicaSet servers)
    {
        Servers = servers;
        _serverNames = new Dictionary<int, string> { [servers.Primary.Port] = "primary" };
        foreach (var standby in servers.Standbys)
        {
            _serverNames[standby.Port] = standby.Name;
        }
    }

    /// <summary>The servers: <c>Standbys[0]</c> is the one every cell reads from and disturbs, <c>Standbys[1]</c> the lagging one.</summary>
    public PostgresReplicaSet Servers { get; }

    /// <summary>Starts the servers and creates the registers' table.</summary>
    public static async Task<HistoryMatrix> StartAsync(CancellationToken ct = default)
    {
        var servers = await PostgresReplicaSet.StartAsync(2, cancellationToken: ct);
        try
        {
            await servers.Primary.ExecuteAsync(HistoryContext.Schema, ct);
            var matrix = new HistoryMatrix(servers);
            await matrix.WarmUpAsync(ct);
            return matrix;
        }
        catch
        {
            await servers.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs <paramref name="cell"/> and checks its history.</summary>
    public async Task<CellReport> RunAsync(HistoryCell cell, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(cell);
        var first = Servers.Standbys[0];
        var second = Servers.Standbys[1];
        await PrepareAsync(cell, ct);

        var prefix = "h" + Guid.NewGuid().ToString("N")[..8];
        await HistoryWorkload.CreateRegistersAsync(sql => Servers.Primary.ExecuteAsync(sql, ct), prefix, cell.Workload.Counters);
        await Servers.WaitForReplayAsync(first, ct: ct);
        await Servers.WaitForReplayAsync(second, ct: ct);

        await using var cluster = await TestCluster.CreateAsync(
            Servers,
            options =>
            {
                if (cell.Standbys == StandbyLayout.One)
                {
                    var others = options.Replicas.Where(r => r.Name != first.Name).ToList();
                    others.ForEach(r => options.Replicas.Remove(r));
                }

                cell.Configure?.Invoke(options);
            },
            recordEvents: false);
        var builder = new DbContextOptionsBuilder<HistoryContext>();
        cluster.Configure(builder);

        using var counters = new LibraryCounters();
        var recorder = new HistoryRecorder();
        var workload = new HistoryWorkload(
            builder.Options,
            recorder,
            cell.Workload with { Commit = cell.Commit == CommitMode.SetLocalOff ? WriteCommit.SetLocalOff : WriteCommit.ServerSetting },
            prefix,
            _serverNames);

        using var disturbing = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var started = recorder.Now;
        var disturbance = DisturbAsync(cell, first, disturbing.Token);
        try
        {
            await workload.RunAsync(ct);
        }
        finally
        {
            await disturbing.CancelAsync();
            await disturbance;
            await RestoreAsync(first, CancellationToken.None);
        }

        var elapsed = recorder.Now - started;
        var history = recorder.Snapshot();
        var check = HistoryChecks.Check(history);
        var readsByServer = history
            .Where(o => o.Kind == OperationKind.Read && o.Outcome == OperationOutcome.Ok)
            .GroupBy(o => o.Server ?? "unknown")
            .ToDictionary(g => g.Key, g => g.Count());
        return new CellReport(cell, check, readsByServer, counters.PositionCaptures, counters.ReplayChecks, counters.ReadFallbacks, counters.All, workload.Errors, elapsed)
        {
            LongFork = new LongForkFigures(counters.LongForkChecks, counters.LongForkRoundTrips, counters.LongForkWaits, counters.LongForkWaited, counters.LongForkLongestWait),
        };
    }

    public async ValueTask DisposeAsync() => await Servers.DisposeAsync();

    /// <summary>
    /// A second of the workload, unchecked, so the first cell does not spend its time building EF's model and compiling code
    /// (on this 2-core machine the first seconds of a process otherwise yield a handful of operations).
    /// </summary>
    private async Task WarmUpAsync(CancellationToken ct)
    {
        var prefix = "warmup" + Guid.NewGuid().ToString("N")[..8];
        var settings = new WorkloadSettings { Duration = TimeSpan.FromSeconds(1), MinimumOperations = 200, MaximumDuration = TimeSpan.FromSeconds(30) };
        await HistoryWorkload.CreateRegistersAsync(sql => Servers.Primary.ExecuteAsync(sql, ct), prefix, settings.Counters);
        await using var cluster = await TestCluster.CreateAsync(Servers, recordEvents: false);
        var builder = new DbContextOptionsBuilder<HistoryContext>();
        cluster.Configure(builder);
        await new HistoryWorkload(builder.Options, new HistoryRecorder(), settings, prefix, _serverNames).RunAsync(ct);
    }

    private async Task PrepareAsync(HistoryCell cell, CancellationToken ct)
    {
        var first = Servers.Standbys[0];
        await RestoreAsync(first, ct);
        var commit = cell.Commit switch
        {
            CommitMode.Asynchronous => "off",
            CommitMode.SynchronousReplication => "remote_apply",
            _ => "on",
        };
        var synchronousStandby = cell.Commit == CommitMode.SynchronousReplication ? first.Name : string.Empty;
        await Servers.Primary.ExecuteAsync($"ALTER SYSTEM SET synchronous_commit = {commit}", ct);
        await Servers.Primary.ExecuteAsync($"ALTER SYSTEM SET synchronous_standby_names = '{synchronousStandby}'", ct);
        await Servers.Primary.ExecuteAsync("SELECT pg_reload_conf()", ct);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (await Servers.Primary.ScalarAsync<string>("SELECT setting FROM pg_settings WHERE name = 'synchronous_commit'", ct) != commit
            || await Servers.Primary.ScalarAsync<string>("SELECT setting FROM pg_settings WHERE name = 'synchronous_standby_names'", ct) != synchronousStandby
            || (synchronousStandby.Length > 0
                && await Servers.Primary.ScalarAsync<string>($"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{synchronousStandby}'", ct) != "sync"))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"synchronous_commit did not become {commit} (synchronous standby '{synchronousStandby}') on the primary within 10 s.");
            }

            await Task.Delay(20, ct);
        }

        await first.SetRecoveryMinApplyDelayAsync(cell.FirstStandbyDelay, ct);
        await Servers.Standbys[1].SetRecoveryMinApplyDelayAsync(cell.SecondStandbyDelay, ct);
    }

    /// <summary>Leaves the standby running with replay going, whatever a disturbance (or a failure) left behind.</summary>
    private async Task RestoreAsync(PostgresServer standby, CancellationToken ct)
    {
        await standby.StartAsync(ct);
        await standby.ResumeReplayAsync(ct);
        await Servers.WaitForReplayAsync(standby, ct: ct);
    }

    private static async Task DisturbAsync(HistoryCell cell, PostgresServer standby, CancellationToken stop)
    {
        if (cell.Disturbance == Disturbance.Steady)
        {
            return;
        }

        try
        {
            // The first disturbance after half a length, then one every four lengths, so the standby serves between them.
            await Task.Delay(cell.DisturbanceLength / 2, stop);
            while (!stop.IsCancellationRequested)
            {
                if (cell.Disturbance == Disturbance.ReplayPaused)
                {
                    await standby.PauseReplayAsync(CancellationToken.None);
                    await Task.Delay(cell.DisturbanceLength, stop).ContinueWith(_ => { }, TaskScheduler.Default);
                    await standby.ResumeReplayAsync(CancellationToken.None);
                }
                else
                {
                    await standby.RestartAsync(StopMode.Fast, CancellationToken.None);
                }

                await Task.Delay(cell.DisturbanceLength * 3, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The workload is done; RestoreAsync puts the standby back.
        }
    }
}
