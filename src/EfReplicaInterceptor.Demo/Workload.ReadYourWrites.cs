using EfReplicaInterceptor.Samples.Shop;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace EfReplicaInterceptor.Demo;

/// <summary>Read-your-writes by WAL position (the default): in one context, across contexts in an ambient scope, and by token.</summary>
internal sealed partial class Workload
{
    private async Task ReadYourWritesAsync()
    {
        DemoConsole.Line();
        DemoConsole.Line("   Read-your-writes by WAL position (ReadYourWrites: WalPosition, the default), replay running.");
        await StepAsync("Read your own write, same context", "SaveChanges, then a LINQ query in the same context: does the new person exist?",
            Expectation.Primary("after-write") with { Or = Expectation.Standby() },
            () => InNewContextAsync(async db =>
            {
                var person = await AddPersonAsync(db, "grace");
                var read = await LookForPersonAsync(db, person.Id, "grace", mustSee: true);
                return read with { Detail = $"wrote person #{person.Id} on {RoleOf(WrittenOn(person))}; the read {read.Detail}" };
            }));

        DemoConsole.Line();
        DemoConsole.Line("   Pausing WAL replay on the standby (pg_wal_replay_pause()): the scope's next write stays on the primary only.");
        await servers.Standby.PauseReplayAsync(ct);
        try
        {
            var (personId, token) = await WriteAndReadInOneScopeAsync();
            await ReadInScopeThatDidNotWriteAsync(personId);
            await ReadWithTokenAsync(personId, token);
        }
        finally
        {
            await servers.Standby.ResumeReplayAsync(ct);
        }

        await servers.WaitForReplayAsync(servers.Standby, ct: ct);
        DemoConsole.Line();
        DemoConsole.Line("   Replay resumed (pg_wal_replay_resume()); the standby has caught up.");
    }

    /// <summary>One "request": an ambient scope, a write in one context and a read in another; returns the scope's token.</summary>
    private async Task<(int PersonId, string? Token)> WriteAndReadInOneScopeAsync()
    {
        using var scope = EfReplicaScope.BeginConsistency();
        var personId = 0;
        await StepAsync("Ambient scope: write in context 1", "using var scope = EfReplicaScope.BeginConsistency(); SaveChanges in a new context",
            Expectation.Primary("write-statement"),
            () => InNewContextAsync(async db =>
            {
                var person = await AddPersonAsync(db, "linus");
                personId = person.Id;
                return new Seen(WrittenOn(person), $"inserted person #{person.Id} 'linus'; RETURNING gave written_on_port = {person.WrittenOnPort}");
            }));

        await StepAsync("Ambient scope: read in context 2", "a LINQ query in another new context, same scope: does person #id exist?",
            Expectation.Primary("after-write"),
            () => InNewContextAsync(db => LookForPersonAsync(db, personId, "linus", mustSee: true)));

        var token = await scope.GetTokenAsync(ct);
        DemoConsole.Line($"       await scope.GetTokenAsync() = \"{token}\" ({token?.Length ?? 0} characters; the primary's WAL position of the write)");
        return (personId, token);
    }

    /// <summary>Another "request": a scope of its own that wrote nothing, so a standby serves it even though it is behind.</summary>
    private async Task ReadInScopeThatDidNotWriteAsync(int personId)
    {
        using var scope = EfReplicaScope.BeginConsistency();
        await StepAsync("Scope that did not write", "using var scope = EfReplicaScope.BeginConsistency(); a LINQ query in a new context",
            Expectation.Standby(),
            () => InNewContextAsync(db => LookForPersonAsync(db, personId, "linus", mustSee: false, mustMiss: true)));
    }

    /// <summary>The next "request" (or another process): the token restores the first scope's position.</summary>
    private async Task ReadWithTokenAsync(int personId, string? token)
    {
        using var scope = EfReplicaScope.BeginConsistency(token);
        await StepAsync("Token carried to a fresh scope", "using var scope = EfReplicaScope.BeginConsistency(token); a LINQ query in a new context",
            Expectation.Primary("after-write"),
            () => token is null
                ? throw new InvalidOperationException("GetTokenAsync returned null after a write.")
                : InNewContextAsync(db => LookForPersonAsync(db, personId, "linus", mustSee: true)));
    }

    private async Task<Person> AddPersonAsync(ShopContext db, string name)
    {
        var person = new Person { Name = name, Mood = Mood.Happy };
        db.People.Add(person);
        await db.SaveChangesAsync(ct);
        return person;
    }

    private static ServerSide WrittenOn(Person person)
        => new(person.WrittenOnPort, person.WrittenInRecovery ?? throw new InvalidOperationException("RETURNING did not fill written_in_recovery."));
}
