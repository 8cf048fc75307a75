using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.Samples.Shop;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace EfReplicaInterceptor.Demo;

/// <summary>
/// The last step: the primary stops and the standby is promoted while a writer saves rows back to back. What each write
/// got (success, or <see cref="EfReplicaFailoverException"/> with its <see cref="FailoverOutcome"/>) is checked against the
/// promoted server's table afterwards.
/// </summary>
internal sealed partial class Workload
{
    private const int WritesBeforeStop = 50;
    private const int WritesAfterRecovery = 10;
    private static readonly TimeSpan FailureBackoff = TimeSpan.FromMilliseconds(25);

    private async Task FailoverAsync()
    {
        // The standby must have everything before the primary goes away (it just came back in the previous step).
        await servers.WaitForReplayAsync(servers.Standby, ct: ct);
        DemoConsole.Line();
        DemoConsole.Line("   Failover. A writer saves one order per new context, back to back, with a client-generated key (Guid), and records");
        DemoConsole.Line("   what SaveChanges reported. The primary is stopped (pg_ctl stop -m fast) and the standby promoted (pg_ctl promote)");
        DemoConsole.Line("   while it writes. The old primary is never started again (there would be two writable primaries).");

        var attempts = new List<WriteAttempt>();
        using var stopWriter = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var writer = Task.Run(() => WriteOrdersAsync(attempts, stopWriter.Token), CancellationToken.None);
        WriteAttempt[] Snapshot()
        {
            lock (attempts)
            {
                return [.. attempts];
            }
        }

        var promotedPort = servers.Standby.Port;
        long stopping = 0, stopped = 0, promoted = 0;
        var notAppliedWithoutPrimary = false;
        WriteAttempt? firstOnPromoted = null;
        var number = Begin("Failover: in-flight writes", "SaveChanges loop on a background task; primary stopped, standby promoted");
        try
        {
            await WaitForAsync("writes on the primary", () => Snapshot().Count(a => a.Succeeded) >= WritesBeforeStop || writer.IsCompleted);
            DemoConsole.Line($"       {Snapshot().Length} writes so far, all on the primary; stopping the primary (port {servers.Primary.Port}) now ...");
            var outage = Stopwatch.StartNew();
            stopping = Stopwatch.GetTimestamp();
            await servers.Primary.StopAsync(StopMode.Fast, ct);
            stopped = Stopwatch.GetTimestamp();
            DemoConsole.Line($"       primary stopped after {outage.Elapsed.TotalSeconds:0.0} s; no server is a primary now (the standby is still in recovery)");

            // A write now cannot open a connection to any primary: the README promises NotApplied. Wait for one, so the
            // check on the promoted server below has a write that must be absent.
            notAppliedWithoutPrimary = await WaitForAsync(
                "a write to fail while no server is primary",
                () => Snapshot().Any(a => a.Outcome == "NotApplied" && a.StartedAt >= stopped) || writer.IsCompleted,
                TimeSpan.FromSeconds(5));
            capture.FlushRepeats();
            DemoConsole.Line($"       promoting the standby (port {promotedPort}) ...");
            await servers.Standby.PromoteAsync(ct);
            promoted = Stopwatch.GetTimestamp();
            DemoConsole.Line($"       standby promoted after {outage.Elapsed.TotalSeconds:0.0} s (pg_is_in_recovery() = false); {Snapshot().Length} writes so far");

            await WaitForAsync(
                "a write to succeed on the promoted standby",
                () => Snapshot().Any(a => a.Succeeded && a.Server?.Port == promotedPort) || writer.IsCompleted,
                OutageTimeout);
            firstOnPromoted = Snapshot().FirstOrDefault(a => a.Succeeded && a.Server?.Port == promotedPort);
            capture.FlushRepeats();
            if (firstOnPromoted is not null)
            {
                DemoConsole.Line($"       writes resumed {outage.Elapsed.TotalSeconds:0.0} s after the stop, without restarting anything");
                await WaitForAsync(
                    "more writes on the promoted standby",
                    () => Snapshot().Count(a => a.Succeeded && a.Server?.Port == promotedPort) >= WritesAfterRecovery || writer.IsCompleted,
                    OutageTimeout);
            }
        }
        finally
        {
            await stopWriter.CancelAsync();
            await writer;
        }

        var all = Snapshot();
        capture.FlushRepeats();
        ReportInFlight(number, all, (stopping, stopped, promoted), notAppliedWithoutPrimary, promotedPort);
        ReportResumed(firstOnPromoted);
        await ReportOnPromotedServerAsync(all, promotedPort);

        await StepAsync("Read after the failover", "LINQ query in a new context (the replica is no longer a standby)", Expectation.PromotedStandby("replica-unavailable"),
            () => InNewContextAsync(CountOrdersAsync));
    }

    /// <summary>The writer: one order per new context until stopped; a failed write is recorded and followed by a short pause.</summary>
    private async Task WriteOrdersAsync(List<WriteAttempt> attempts, CancellationToken stop)
    {
        for (var attempt = 1; !stop.IsCancellationRequested; attempt++)
        {
            var order = new FailoverOrder { Id = Guid.NewGuid(), Attempt = attempt };
            var mark = capture.Count;
            var startedAt = Stopwatch.GetTimestamp();
            WriteAttempt result;
            try
            {
                await using var scope = services.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<ShopContext>();
                db.FailoverOrders.Add(order);

                // The demo's token, not the writer's stop token: a write once started runs to its end, as in an application.
                await db.SaveChangesAsync(ct);
                result = new WriteAttempt(attempt, order.Id, "succeeded", new ServerSide(order.WrittenOnPort, order.WrittenInRecovery ?? true), capture.LastSince(mark), null, startedAt, Stopwatch.GetTimestamp());
            }
            catch (EfReplicaFailoverException exception)
            {
                result = new WriteAttempt(attempt, order.Id, exception.Outcome.ToString(), null, capture.LastSince(mark), Describe(exception.InnerException), startedAt, Stopwatch.GetTimestamp());
            }
            catch (Exception exception) when (!ct.IsCancellationRequested)
            {
                // Not what the README promises: every failover error of a write is an EfReplicaFailoverException, unwrapped.
                var wrapped = EfReplicaFailoverException.Find(exception);
                var outcome = wrapped is null ? "untyped" : $"{wrapped.Outcome} (wrapped)";
                result = new WriteAttempt(attempt, order.Id, outcome, null, capture.LastSince(mark), Describe(exception), startedAt, Stopwatch.GetTimestamp());
            }

            lock (attempts)
            {
                attempts.Add(result);
            }

            if (!result.Succeeded)
            {
                try
                {
                    await Task.Delay(FailureBackoff, stop);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }
    }

    /// <summary>
    /// Every write that ended after the stop began, up to the first success on the promoted standby, in order and grouped
    /// by outcome: the one in flight when the stop began, the ones that found no primary, the first on the new one.
    /// </summary>
    /// <param name="times">When the stop began, when the primary was down, and when the standby was promoted (<see cref="Stopwatch.GetTimestamp"/>).</param>
    private void ReportInFlight(int number, WriteAttempt[] all, (long Stopping, long Stopped, long Promoted) times, bool notAppliedWithoutPrimary, int promotedPort)
    {
        var stopping = times.Stopping;
        string Milliseconds(long timestamp) => $"{Stopwatch.GetElapsedTime(stopping, timestamp).TotalMilliseconds:+0;-0} ms";
        string OutcomeOf(WriteAttempt a) => a.Succeeded
            ? $"succeeded on {RoleOf(a.Server!)}"
            : a.Outcome is "NotApplied" or "Unknown" ? $"EfReplicaFailoverException, Outcome = {a.Outcome}: {a.Error}" : $"{a.Outcome}: {a.Error}";

        var window = stopping == 0 ? [] : all
            .Where(a => a.FinishedAt >= stopping)
            .TakeWhile(a => !(a.Succeeded && a.Server?.Port == promotedPort))
            .ToList();
        var firstOnPromoted = all.FirstOrDefault(a => a.FinishedAt >= stopping && a.Succeeded && a.Server?.Port == promotedPort);
        if (firstOnPromoted is not null)
        {
            window.Add(firstOnPromoted);
        }

        DemoConsole.Line($"       the writes around the failover (times from the start of the stop; primary down at {Milliseconds(times.Stopped)}, standby promoted at {Milliseconds(times.Promoted)}):");
        var index = 0;
        while (index < window.Count)
        {
            var first = window[index];
            var run = window.Skip(index)
                .TakeWhile(a => OutcomeOf(a) == OutcomeOf(first) && (a.StartedAt < stopping) == (first.StartedAt < stopping))
                .ToList();
            var last = run[^1];
            var which = run.Count == 1 ? $"#{first.Attempt}" : $"#{first.Attempt}-#{last.Attempt} ({run.Count} writes)";
            var inFlight = first.StartedAt < stopping ? ", in flight when the stop began" : "";
            DemoConsole.Line($"         {which}: started {Milliseconds(first.StartedAt)}{inFlight}, ended {Milliseconds(last.FinishedAt)}: {OutcomeOf(first)}");
            index += run.Count;
        }

        var failed = all.Where(a => !a.Succeeded).ToList();
        var untyped = failed.Count(a => a.Outcome is not ("NotApplied" or "Unknown"));
        var succeeded = all.Count(a => a.Succeeded);
        var ok = untyped == 0 && notAppliedWithoutPrimary;
        if (!notAppliedWithoutPrimary)
        {
            DemoConsole.Line("       no write was reported NotApplied while no server was a primary (MISMATCH)");
        }

        var summary = string.Join(", ", failed.GroupBy(a => a.Outcome).Select(g => $"{g.Count()} {g.Key}"));
        DemoConsole.Line($"       {all.Length} writes: {succeeded} succeeded, {failed.Count} failed ({(failed.Count == 0 ? "none" : summary)}); "
            + $"expected every failure typed (EfReplicaFailoverException, NotApplied or Unknown), NotApplied while no server was primary => {(ok ? "ok" : "MISMATCH")}");
        _results.Add(new StepResult(number, "Failover: in-flight writes", "typed NotApplied / Unknown", $"{succeeded} ok, {failed.Count} failed", failed.Count == 0 ? "(no failure)" : summary, ok));
    }

    private void ReportResumed(WriteAttempt? firstOnPromoted)
    {
        var expected = Expectation.PromotedStandby("write-statement");
        var number = Begin("Failover: writes resume", "the first write that succeeded after the promotion (RETURNING written_on_port)");
        if (firstOnPromoted is null)
        {
            DemoConsole.Line($"       no write succeeded on the promoted standby within {OutageTimeout.TotalSeconds:0} s => MISMATCH");
            _results.Add(new StepResult(number, "Failover: writes resume", expected.ToString(), "(none)", "(no event 1000)", false));
            return;
        }

        Report(number, "Failover: writes resume", expected,
            new Seen(firstOnPromoted.Server!, $"write #{firstOnPromoted.Attempt} (order {firstOnPromoted.Id}) succeeded; RETURNING gave written_on_port = {firstOnPromoted.Server!.Port}"),
            firstOnPromoted.Routed, null);
    }

    /// <summary>Asks the promoted server itself: every reported success is there exactly once, no NotApplied write is there at all.</summary>
    private async Task ReportOnPromotedServerAsync(WriteAttempt[] all, int promotedPort)
    {
        const string title = "Failover: writes on the new primary";
        var number = Begin(title, "SELECT id, count(*), inet_server_port(), pg_is_in_recovery() FROM failover_orders on the promoted standby, outside EF");
        var counts = new Dictionary<Guid, long>();
        ServerSide server;
        await using (var connection = new NpgsqlConnection(servers.Standby.ConnectionString))
        {
            await connection.OpenAsync(ct);
            await using (var command = new NpgsqlCommand("SELECT id, count(*) FROM failover_orders GROUP BY id", connection))
            await using (var reader = await command.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    counts[reader.GetGuid(0)] = reader.GetInt64(1);
                }
            }

            await using var where = new NpgsqlCommand("SELECT inet_server_port(), pg_is_in_recovery()", connection);
            await using var whereReader = await where.ExecuteReaderAsync(ct);
            await whereReader.ReadAsync(ct);
            server = new ServerSide(whereReader.GetInt32(0), whereReader.GetBoolean(1));
        }

        long CountOf(WriteAttempt attempt) => counts.GetValueOrDefault(attempt.Id);
        var succeeded = all.Where(a => a.Succeeded).ToList();
        var notApplied = all.Where(a => a.Outcome == "NotApplied").ToList();
        var unknown = all.Where(a => a.Outcome == "Unknown").ToList();
        var missing = succeeded.Count(a => CountOf(a) == 0);
        var duplicated = succeeded.Count(a => CountOf(a) > 1) + all.Count(a => CountOf(a) > 1 && !a.Succeeded);
        var appliedAnyway = notApplied.Count(a => CountOf(a) > 0);
        var onPromoted = succeeded.Count(a => a.Server?.Port == promotedPort && a.Server.InRecovery == false);
        var foreign = counts.Keys.Except(all.Select(a => a.Id)).Count();

        DemoConsole.Line($"       {counts.Count} orders on the promoted server; {onPromoted} of the {succeeded.Count} successful writes were written by it (written_on_port = {promotedPort})");
        DemoConsole.Line($"       succeeded: {succeeded.Count - missing} present exactly once, {missing} missing, {duplicated} duplicated; NotApplied: {notApplied.Count - appliedAnyway} absent, {appliedAnyway} present");
        if (unknown.Count > 0)
        {
            DemoConsole.Line($"       Unknown (check before retrying, as the README says): "
                + string.Join(", ", unknown.Select(a => $"#{a.Attempt} {(CountOf(a) > 0 ? "was applied" : "was not applied")}")));
        }

        var ranOn = RoleOf(server);
        var ok = missing == 0 && duplicated == 0 && appliedAnyway == 0 && foreign == 0 && onPromoted > 0 && ranOn == "promoted standby";
        DemoConsole.Line($"       server: port {server.Port}, pg_is_in_recovery() = {(server.InRecovery ? "true" : "false")} => {ranOn}");
        DemoConsole.Line($"       expected every success once, every NotApplied absent => {(ok ? "ok" : "MISMATCH")}");
        _results.Add(new StepResult(number, title, "successes once, NotApplied absent", ranOn,
            $"{succeeded.Count - missing}/{succeeded.Count} present, {notApplied.Count - appliedAnyway}/{notApplied.Count} absent", ok));
    }

    private async Task<Seen> CountOrdersAsync(ShopContext db)
    {
        var row = await db.People.OrderBy(p => p.Id)
            .Select(p => new { Orders = db.FailoverOrders.Count(), Port = ShopContext.ServerPort(), InRecovery = ShopContext.InRecovery() })
            .FirstAsync(ct);
        return new Seen(new ServerSide(row.Port, row.InRecovery), $"sees {row.Orders} orders");
    }

    /// <summary>Polls <paramref name="done"/> every 200 ms, a dot per poll; false when <paramref name="timeout"/> passed first.</summary>
    private async Task<bool> WaitForAsync(string what, Func<bool> done, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        DemoConsole.Write($"waiting for {what} ");
        while (!done())
        {
            if (clock.Elapsed > (timeout ?? OutageTimeout))
            {
                DemoConsole.Write($" gave up after {clock.Elapsed.TotalSeconds:0.0} s");
                DemoConsole.EndLine();
                return false;
            }

            DemoConsole.Write(".");
            await Task.Delay(PollInterval, ct);
        }

        DemoConsole.Write($" done, {clock.Elapsed.TotalSeconds:0.0} s");
        DemoConsole.EndLine();
        return true;
    }

    private static string Describe(Exception? exception) => exception switch
    {
        null => "(no inner exception)",
        PostgresException postgres => $"{postgres.SqlState} {postgres.MessageText}",
        _ => $"{exception.GetType().Name}: {FirstLine(exception.Message)}",
    };

    private static string FirstLine(string text)
    {
        var end = text.IndexOfAny(['\r', '\n']);
        return end < 0 ? text : text[..end];
    }

    /// <summary>One SaveChanges of the writer: "succeeded", or the failover outcome the library reported.</summary>
    /// <param name="StartedAt">When SaveChanges was called (<see cref="Stopwatch.GetTimestamp"/>).</param>
    /// <param name="FinishedAt">When it returned or threw.</param>
    private sealed record WriteAttempt(int Attempt, Guid Id, string Outcome, ServerSide? Server, RoutedCommand? Routed, string? Error, long StartedAt, long FinishedAt)
    {
        public bool Succeeded => Outcome == "succeeded";
    }
}
