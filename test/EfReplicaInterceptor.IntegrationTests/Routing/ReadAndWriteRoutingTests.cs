using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>Plain reads go to the replica; writes, locking reads and write functions go to the primary. Sync and async.</summary>
public sealed class ReadAndWriteRoutingTests : RoutingTestBase
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task Linq_read_runs_on_the_replica(bool async)
    {
        await using var context = Cluster.NewContext();

        AssertOnReplica(await WhereAmI(context, async));
        AssertLastDecision("replica", "read");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task FromSql_composed_with_linq_runs_on_the_replica(bool async)
    {
        await using var context = Cluster.NewContext();
        var query = context.People.FromSqlRaw("SELECT * FROM people WHERE id > {0}", 0)
            .OrderBy(p => p.Id).Select(p => new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery()));

        AssertOnReplica(async ? await query.FirstAsync() : query.First());
        AssertLastDecision("replica", "read");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task SqlQuery_runs_on_the_replica(bool async)
    {
        await using var context = Cluster.NewContext();
        var query = context.Database.SqlQueryRaw<int>("SELECT inet_server_port() AS \"Value\"");

        var port = async ? await query.SingleAsync() : query.Single();

        Assert.That(port, Is.EqualTo(Servers.Standby.Port));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Count_and_Any_run_on_the_replica(bool async)
    {
        await using var context = Cluster.NewContext();
        // Only a standby can run this without dividing by zero.
        var onStandby = context.People.Where(p => 1 / (ShopContext.InRecovery() ? 1 : 0) == 1);

        var count = async ? await onStandby.CountAsync() : onStandby.Count();
        var any = async ? await onStandby.AnyAsync() : onStandby.Any();

        Assert.That(count, Is.GreaterThanOrEqualTo(50));
        Assert.That(any, Is.True);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Non_query_read_runs_on_the_replica(bool async)
    {
        await using var context = Cluster.NewContext();
        // Division by zero anywhere but on a standby.
        const string sql = "SELECT 1 / (CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END)";

        _ = async ? await context.Database.ExecuteSqlRawAsync(sql) : context.Database.ExecuteSqlRaw(sql);

        AssertLastDecision("replica", "read");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task SaveChanges_runs_on_the_primary(bool async)
    {
        await using var context = Cluster.NewContext();
        var people = new[] { new Person { Name = UniqueName("save"), Mood = Mood.Sad }, new Person { Name = UniqueName("save"), Mood = Mood.Meh } };
        context.People.AddRange(people);

        _ = async ? await context.SaveChangesAsync() : context.SaveChanges();

        Assert.That(people.Select(p => p.WrittenOnPort), Is.All.EqualTo(Servers.Primary.Port));
        Assert.That(await PrimaryCount($"name IN ('{people[0].Name}', '{people[1].Name}')"), Is.EqualTo(2));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ExecuteUpdate_and_ExecuteDelete_run_on_the_primary(bool async)
    {
        var name = UniqueName("bulk");
        await Servers.Primary.ExecuteAsync($"INSERT INTO people (name) VALUES ('{name}')");
        await using var context = Cluster.NewContext();
        var rows = context.People.Where(p => p.Name == name);

        var updated = async
            ? await rows.ExecuteUpdateAsync(s => s.SetProperty(p => p.TouchedOnPort, p => ShopContext.ServerPort()))
            : rows.ExecuteUpdate(s => s.SetProperty(p => p.TouchedOnPort, p => ShopContext.ServerPort()));
        var touchedOn = await Servers.Primary.ScalarAsync<int>($"SELECT touched_on_port FROM people WHERE name = '{name}'");
        var deleted = async ? await rows.ExecuteDeleteAsync() : rows.ExecuteDelete();

        Assert.That((updated, deleted), Is.EqualTo((1, 1)));
        Assert.That(touchedOn, Is.EqualTo(Servers.Primary.Port));
        Assert.That(await PrimaryCount($"name = '{name}'"), Is.Zero);
        // EF Core 10.0.15 names ExecuteDelete's source apart (10.0.14 reported BulkUpdate for both); routing is by the SQL either way.
        Assert.That(Recorder.Commands.Select(c => (c.CommandSource, c.Target, c.Reason)),
            Is.EqualTo(new[] { ("BulkUpdate", "primary", "write-statement"), ("ExecuteDelete", "primary", "write-statement") }));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ExecuteSql_write_runs_on_the_primary(bool async)
    {
        var name = UniqueName("raw");
        await using var context = Cluster.NewContext();
        FormattableString sql = $"INSERT INTO people (name) VALUES ({name})";

        _ = async ? await context.Database.ExecuteSqlAsync(sql) : context.Database.ExecuteSql(sql);

        Assert.That(await Servers.Primary.ScalarAsync<int>($"SELECT written_on_port FROM people WHERE name = '{name}'"), Is.EqualTo(Servers.Primary.Port));
        AssertLastDecision("primary", "write-statement");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Locking_read_runs_on_the_primary(bool async)
    {
        await using var context = Cluster.NewContext();
        var query = context.People.FromSqlRaw("SELECT * FROM people WHERE id = 1 FOR UPDATE")
            .Select(p => new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery()));

        AssertOnPrimary(async ? await query.SingleAsync() : query.Single());
        AssertLastDecision("primary", "locking-read");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Sequence_function_runs_on_the_primary(bool async)
    {
        await using var context = Cluster.NewContext();
        var query = context.Database.SqlQueryRaw<long>("SELECT nextval('tickets') AS \"Value\"");

        var ticket = async ? await query.SingleAsync() : query.Single();

        Assert.That(ticket, Is.Positive);
        Assert.That(Recorder.Commands.Select(c => c.Target), Is.All.EqualTo("primary"));
        AssertLastDecision("primary", "write-function");
    }
}
