using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>The volatile functions of the application's schemas, learned from the primary's catalog, keep reads that call them on the primary.</summary>
public sealed class LearnedFunctionsTests : RoutingTestBase
{
    [OneTimeSetUp]
    public async Task CreateWritingFunction()
    {
        await Servers.Primary.ExecuteAsync("""
            CREATE TABLE IF NOT EXISTS visits (at timestamptz NOT NULL DEFAULT clock_timestamp());
            CREATE OR REPLACE FUNCTION public.record_visit() RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO visits DEFAULT VALUES RETURNING 1 $$;
            """);
        await Servers.WaitForReplayAsync(Servers.Standby);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_read_calling_a_learned_volatile_function_runs_on_the_primary(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, options => options.LearnVolatileFunctions = true);
        await using var context = cluster.NewContext();
        var query = context.Database.SqlQueryRaw<int>("SELECT record_visit() AS \"Value\"");

        var result = async ? await query.SingleAsync() : query.Single();

        Assert.That(result, Is.EqualTo(1));
        Assert.That((cluster.Recorder.Last.Target, cluster.Recorder.Last.Reason), Is.EqualTo(("primary", "write-function")));
        Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Does.Contain(2008).And.No.Contain(1002), "learned at start; the standby never saw the call");
        AssertOnReplica(await WhereAmI(context, async)); // plain reads still go to the replica
    }

    [Test]
    public async Task Without_learning_the_standby_refuses_the_call_and_the_read_moves_to_the_primary()
    {
        await using var cluster = await TestCluster.CreateAsync(Servers);
        await using var context = cluster.NewContext();

        var result = await context.Database.SqlQueryRaw<int>("SELECT record_visit() AS \"Value\"").SingleAsync();

        Assert.That(result, Is.EqualTo(1), "the safety net: 25006 on the standby sends the statement to the primary");
        Assert.That(cluster.Recorder.AllEvents.Where(e => e.EventId == 1002).Select(e => e.Message), Has.One.Contains("read-only"));
    }
}
