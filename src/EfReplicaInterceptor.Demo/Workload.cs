using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.Samples.Shop;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace EfReplicaInterceptor.Demo;

/// <summary>
/// The scripted workload: each step runs one kind of command through an ordinary DbContext, asks the server that ran it
/// where it is (<c>inet_server_port()</c>, <c>pg_is_in_recovery()</c>), takes the reason from the library's event 1000, and
/// compares both with what the README's routing rules promise.
/// </summary>
internal sealed partial class Workload(PostgresReplicaSet servers, IServiceProvider services, RoutingCapture capture, CancellationToken ct)
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan OutageTimeout = TimeSpan.FromSeconds(15);

    private readonly List<StepResult> _results = [];

    public IReadOnlyList<StepResult> Results => _results;

    public async Task RunAsync()
    {
        // The steps that pause replay need the standby to stay in rotation for a moment after a write (under the lag budget).
        // EF compiles its update pipeline and each query shape on first use, which on a busy machine can take seconds: do
        // that first, with replay running, so it cannot be mistaken for replica lag.
        DemoConsole.Line();
        DemoConsole.Line("   Warming up EF: one SaveChanges (a tick row) and the steps' query shapes, before any replay is paused.");
        await using (var warmUp = services.CreateAsyncScope())
        {
            var db = warmUp.ServiceProvider.GetRequiredService<ShopContext>();
            db.Ticks.Add(new Tick());
            await db.SaveChangesAsync(ct);
            await LookForPersonAsync(db, 1, "seed-1", mustSee: true);
            await ReadFirstSadPersonAsync(db);
        }

        await StepAsync("Plain LINQ read", "LINQ query: first person WHERE mood = @mood (an enum parameter and column)", Expectation.Standby(),
            () => InNewContextAsync(ReadFirstSadPersonAsync));

        // The README's story: a request saves, then reads, while the standby is a little behind. Pausing replay makes
        // "a little behind" certain, so the read after the write has something to miss.
        DemoConsole.Line();
        DemoConsole.Line("   Pausing WAL replay on the standby (pg_wal_replay_pause()): it will not have the next write yet.");
        await servers.Standby.PauseReplayAsync(ct);
        var personId = 0;
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ShopContext>();
            await StepAsync("SaveChanges", "INSERT ... RETURNING written_on_port (column default inet_server_port())", Expectation.Primary("write-statement"), async () =>
            {
                var person = new Person { Name = "ada", Mood = Mood.Sad };
                db.People.Add(person);
                await db.SaveChangesAsync(ct);
                personId = person.Id;
                var inRecovery = person.WrittenInRecovery ?? throw new InvalidOperationException("RETURNING did not fill written_in_recovery.");
                return new Seen(new ServerSide(person.WrittenOnPort, inRecovery), $"inserted person #{person.Id} 'ada'; RETURNING gave written_on_port = {person.WrittenOnPort}");
            });

            await StepAsync("Read after the write, same context", "LINQ query: does person #id exist?", Expectation.Primary("after-write"),
                () => LookForPersonAsync(db, personId, "ada", mustSee: true));
        }

        await StepAsync("Read in a new context", "LINQ query: does person #id exist?", Expectation.Standby(),
            () => InNewContextAsync(db => LookForPersonAsync(db, personId, "ada", mustSee: false)));

        await servers.Standby.ResumeReplayAsync(ct);
        await servers.WaitForReplayAsync(servers.Standby, ct: ct);
        DemoConsole.Line();
        DemoConsole.Line("   Replay resumed (pg_wal_replay_resume()); the standby has caught up.");

        await StepAsync("UsePrimary()", "LINQ query tagged .UsePrimary()", Expectation.Primary("tagged-primary"),
            () => InNewContextAsync(db => ReadFirstSadPersonAsync(db, usePrimary: true)));

        await StepAsync("Read in a transaction", "LINQ query after Database.BeginTransactionAsync()", Expectation.Primary("transaction"),
            () => InNewContextAsync(async db =>
            {
                await using var transaction = await db.Database.BeginTransactionAsync(ct);
                var seen = await ReadFirstSadPersonAsync(db);
                await transaction.CommitAsync(ct);
                return seen;
            }));

        await StepAsync("Locking read", "FromSqlRaw(\"SELECT * FROM people WHERE id = {0} FOR UPDATE\")", Expectation.Primary("locking-read"),
            () => InNewContextAsync(async db =>
            {
                var row = await db.People.FromSqlRaw("SELECT * FROM people WHERE id = {0} FOR UPDATE", personId)
                    .Select(p => new { p.Name, Port = ShopContext.ServerPort(), InRecovery = ShopContext.InRecovery() })
                    .SingleAsync(ct);
                return new Seen(new ServerSide(row.Port, row.InRecovery), $"locked person #{personId} '{row.Name}'");
            }));

        await StepAsync("nextval()", "SqlQueryRaw(\"SELECT nextval('tickets') ...\")", Expectation.Primary("write-function"),
            () => InNewContextAsync(async db =>
            {
                var rows = await db.Database
                    .SqlQueryRaw<RawServerSide>("SELECT nextval('tickets') AS \"Value\", inet_server_port() AS \"Port\", pg_is_in_recovery() AS \"InRecovery\"")
                    .ToListAsync(ct);
                var row = rows.Single();
                return new Seen(new ServerSide(row.Port, row.InRecovery), $"ticket number {row.Value}");
            }));

        await StepAsync("EfReplicaScope.ForcePrimary()", "LINQ query inside using (EfReplicaScope.ForcePrimary())", Expectation.Primary("primary-scope"),
            async () =>
            {
                using (EfReplicaScope.ForcePrimary())
                {
                    return await InNewContextAsync(ReadFirstSadPersonAsync);
                }
            });

        await StepAsync("ExecuteUpdate", "ExecuteUpdateAsync: UPDATE people SET touched_on_port = inet_server_port() ...", Expectation.Primary("write-statement"),
            () => InNewContextAsync(async db =>
            {
                var updated = await db.People.Where(p => p.Id == personId).ExecuteUpdateAsync(
                    setters => setters
                        .SetProperty(p => p.TouchedOnPort, p => (int?)ShopContext.ServerPort())
                        .SetProperty(p => p.TouchedInRecovery, p => (bool?)ShopContext.InRecovery()),
                    ct);

                // Read back outside EF and the library, straight from the primary: the row says who updated it.
                var port = await servers.Primary.ScalarAsync<int>($"SELECT touched_on_port FROM people WHERE id = {personId}", ct);
                var inRecovery = await servers.Primary.ScalarAsync<bool>($"SELECT touched_in_recovery FROM people WHERE id = {personId}", ct);
                return new Seen(new ServerSide(port, inRecovery), $"{updated} row updated; touched_on_port = {port}");
            }));

        await StepAsync("Temp table on a held-open connection", "OpenConnection; CREATE TEMP TABLE cart; INSERT; SqlQueryRaw(\"SELECT count(*) FROM cart\")", Expectation.Primary("session-pinned"),
            () => InNewContextAsync(async db =>
            {
                await db.Database.OpenConnectionAsync(ct);
                try
                {
                    await db.Database.ExecuteSqlRawAsync("CREATE TEMP TABLE cart (item text NOT NULL)", ct);
                    await db.Database.ExecuteSqlRawAsync("INSERT INTO cart VALUES ('book'), ('pen')", ct);
                    var rows = await db.Database
                        .SqlQueryRaw<RawServerSide>("SELECT count(*) AS \"Value\", inet_server_port() AS \"Port\", pg_is_in_recovery() AS \"InRecovery\" FROM cart")
                        .ToListAsync(ct);
                    var row = rows.Single();
                    return new Seen(new ServerSide(row.Port, row.InRecovery), $"the session's temp table holds {row.Value} items");
                }
                finally
                {
                    await db.Database.CloseConnectionAsync();
                }
            }));

        await ReadYourWritesAsync();
        await ReplayPausedAsync();
        await StandbyStoppedAsync();
        await FailoverAsync();
    }

    private async Task ReplayPausedAsync()
    {
        DemoConsole.Line();
        DemoConsole.Line("   Pausing WAL replay on the standby (pg_wal_replay_pause()); a writer inserts a tick row on the primary every 100 ms.");
        await servers.Standby.PauseReplayAsync(ct);
        using var stopWriter = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var written = 0;
        var writer = Task.Run(
            async () =>
            {
                while (!stopWriter.IsCancellationRequested)
                {
                    await servers.Primary.ExecuteAsync("INSERT INTO ticks DEFAULT VALUES", stopWriter.Token);
                    Interlocked.Increment(ref written);
                    await Task.Delay(TimeSpan.FromMilliseconds(100), stopWriter.Token);
                }
            },
            stopWriter.Token);
        try
        {
            await PollStepAsync("Replay paused: reads fall back", "LINQ query in a new context, every 200 ms", Expectation.Primary("replica-lagging", "replica-unavailable"),
                "the monitor to take the lagging standby out of rotation", () => InNewContextAsync(CountTicksAsync));
        }
        finally
        {
            await stopWriter.CancelAsync();
            try
            {
                await writer;
            }
            catch (OperationCanceledException)
            {
            }
        }

        DemoConsole.Line($"   The writer inserted {Volatile.Read(ref written)} tick rows. Resuming replay (pg_wal_replay_resume()).");
        await servers.Standby.ResumeReplayAsync(ct);
        await PollStepAsync("Replay resumed: reads return", "LINQ query in a new context, every 200 ms", Expectation.Standby(),
            "the standby to catch up and rejoin the rotation", () => InNewContextAsync(CountTicksAsync));
    }

    private async Task StandbyStoppedAsync()
    {
        DemoConsole.Line();
        DemoConsole.Line("   Stopping the standby like a crash (pg_ctl stop -m immediate); its pooled connections are now dead.");
        await servers.Standby.StopAsync(StopMode.Immediate, ct);
        await StepAsync("Standby down: reads keep working", "LINQ query in a new context", Expectation.Primary("replica-unavailable"),
            () => InNewContextAsync(CountTicksAsync));

        DemoConsole.Line("   Starting the standby again (same port, crash recovery, then streaming).");
        await servers.Standby.StartAsync(ct);
        await PollStepAsync("Standby back: reads return", "LINQ query in a new context, every 200 ms", Expectation.Standby(),
            "the monitor to find the standby healthy again", () => InNewContextAsync(CountTicksAsync));
    }

    private async Task<Seen> ReadFirstSadPersonAsync(ShopContext db) => await ReadFirstSadPersonAsync(db, usePrimary: false);

    private async Task<Seen> ReadFirstSadPersonAsync(ShopContext db, bool usePrimary)
    {
        var people = usePrimary ? db.People.UsePrimary() : db.People;
        var row = await people.Where(p => p.Mood == Mood.Sad).OrderBy(p => p.Id)
            .Select(p => new { p.Name, p.Mood, Port = ShopContext.ServerPort(), InRecovery = ShopContext.InRecovery() })
            .FirstAsync(ct);
        return new Seen(new ServerSide(row.Port, row.InRecovery), $"first sad person: '{row.Name}' ({row.Mood})");
    }

    /// <param name="mustSee">The read must see the person (its own write); a miss is a problem.</param>
    /// <param name="mustMiss">The read must not see the person (a paused standby cannot have it); seeing it is a problem.</param>
    private async Task<Seen> LookForPersonAsync(ShopContext db, int personId, string name, bool mustSee, bool mustMiss = false)
    {
        var row = await db.People.Where(p => p.Id == 1)
            .Select(p => new { Sees = db.People.Any(q => q.Id == personId), Port = ShopContext.ServerPort(), InRecovery = ShopContext.InRecovery() })
            .SingleAsync(ct);
        var detail = row.Sees
            ? $"sees person #{personId} '{name}'"
            : $"does not see person #{personId} '{name}' yet: the standby has not replayed it";
        var problem = (mustSee && !row.Sees) ? "the scope's own write is missing"
            : (mustMiss && row.Sees) ? "a paused standby cannot have replayed the write"
            : null;
        return new Seen(new ServerSide(row.Port, row.InRecovery), detail, problem);
    }

    private async Task<Seen> CountTicksAsync(ShopContext db)
    {
        var row = await db.People.OrderBy(p => p.Id)
            .Select(p => new { Ticks = db.Ticks.Count(), Port = ShopContext.ServerPort(), InRecovery = ShopContext.InRecovery() })
            .FirstAsync(ct);
        var onPrimary = await servers.Primary.ScalarAsync<long>("SELECT count(*) FROM ticks", ct);
        return new Seen(new ServerSide(row.Port, row.InRecovery), $"sees {row.Ticks} tick rows (the primary has {onPrimary})");
    }

    private async Task<Seen> InNewContextAsync(Func<ShopContext, Task<Seen>> read)
    {
        await using var scope = services.CreateAsyncScope();
        return await read(scope.ServiceProvider.GetRequiredService<ShopContext>());
    }

    private async Task StepAsync(string title, string kind, Expectation expected, Func<Task<Seen>> action)
    {
        var number = Begin(title, kind);
        var (seen, routed, error) = await ObserveAsync(action);
        Report(number, title, expected, seen, routed, error);
    }

    /// <summary>Repeats <paramref name="read"/> until it runs on the expected server or <see cref="OutageTimeout"/> passes, a dot per try.</summary>
    private async Task PollStepAsync(string title, string kind, Expectation expected, string waitingFor, Func<Task<Seen>> read)
    {
        var number = Begin(title, kind);
        DemoConsole.Write($"waiting for {waitingFor} ");
        var clock = Stopwatch.StartNew();
        Seen? before = null;
        for (var tries = 1; ; tries++)
        {
            var (seen, routed, error) = await ObserveAsync(read);
            var arrived = seen is not null && RoleOf(seen.Server) == expected.Server;
            if (arrived || clock.Elapsed > OutageTimeout)
            {
                DemoConsole.Write($" {(arrived ? "done" : "gave up")} after {tries} reads, {clock.Elapsed.TotalSeconds:0.0} s");
                if (before is not null && before.Detail != seen?.Detail)
                {
                    DemoConsole.Line($"       the read before ran on {RoleOf(before.Server)} and {before.Detail}");
                }

                Report(number, title, expected, seen, routed, error);
                return;
            }

            before = seen ?? before;
            DemoConsole.Write(".");
            await Task.Delay(PollInterval, ct);
        }
    }

    private int Begin(string title, string kind)
    {
        var number = _results.Count + 1;
        DemoConsole.Line();
        DemoConsole.Line($"{number,3}. {title}: {kind}");
        return number;
    }

    private async Task<(Seen? Seen, RoutedCommand? Routed, Exception? Error)> ObserveAsync(Func<Task<Seen>> action)
    {
        var mark = capture.Count;
        try
        {
            var seen = await action();
            return (seen, capture.LastSince(mark), null);
        }
        catch (Exception exception) when (!ct.IsCancellationRequested)
        {
            return (null, capture.LastSince(mark), exception);
        }
    }

    private void Report(int number, string title, Expectation expected, Seen? seen, RoutedCommand? routed, Exception? error)
    {
        capture.FlushRepeats();
        var ranOn = seen is null ? "(failed)" : RoleOf(seen.Server);
        var reason = routed?.Reason ?? "(no event 1000)";
        var ok = error is null
            && seen?.Problem is null
            && routed is not null
            && expected.Matches(ranOn, routed);

        if (seen is not null)
        {
            DemoConsole.Line($"       {seen.Detail}{(seen.Problem is null ? "" : $" (wrong: {seen.Problem})")}");
            DemoConsole.Line($"       server: port {seen.Server.Port}, pg_is_in_recovery() = {(seen.Server.InRecovery ? "true" : "false")} => {ranOn}");
        }
        else
        {
            DemoConsole.Line($"       failed: {error?.GetType().Name}: {error?.Message}");
        }

        var library = routed is null ? "no routing event" : $"{routed.Target} ({routed.Reason}) for a {routed.CommandSource} command";
        DemoConsole.Line($"       library: {library}; expected {expected} => {(ok ? "ok" : "MISMATCH")}");
        _results.Add(new StepResult(number, title, expected.ToString(), ranOn, reason, ok));
    }

    private string RoleOf(ServerSide server) => server switch
    {
        { InRecovery: false } when server.Port == servers.Primary.Port => "primary",
        { InRecovery: true } when server.Port == servers.Standby.Port => "standby",
        { InRecovery: false } when server.Port == servers.Standby.Port => "promoted standby",
        _ => $"port {server.Port}?",
    };
}
