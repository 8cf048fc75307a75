using System.Transactions;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>Transactions, tags, ambient scopes and a context's own writes keep reads on the primary.</summary>
public sealed class ScopeRoutingTests : RoutingTestBase
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task Read_in_an_EF_transaction_runs_on_the_primary(bool async)
    {
        await using var context = Cluster.NewContext();
        await using var transaction = async ? await context.Database.BeginTransactionAsync() : context.Database.BeginTransaction();

        AssertOnPrimary(await WhereAmI(context, async));
        AssertLastDecision("primary", "transaction");
        await transaction.CommitAsync();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Read_in_a_transaction_passed_with_UseTransaction_runs_on_the_primary(bool async)
    {
        await using var context = Cluster.NewContext();
        var connection = context.Database.GetDbConnection();
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await context.Database.UseTransactionAsync(transaction);

        AssertOnPrimary(await WhereAmI(context, async));
        AssertLastDecision("primary", "transaction");
        await transaction.RollbackAsync();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Read_in_an_ambient_TransactionScope_runs_on_the_primary(bool async)
    {
        using var scope = new TransactionScope(TransactionScopeOption.Required, TransactionScopeAsyncFlowOption.Enabled);
        await using var context = Cluster.NewContext();

        AssertOnPrimary(await WhereAmI(context, async));
        AssertLastDecision("primary", "transaction");
        scope.Complete();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Query_tagged_UsePrimary_runs_on_the_primary_and_the_next_one_on_the_replica(bool async)
    {
        await using var context = Cluster.NewContext();
        var tagged = context.WhereAmI().TagWith("another tag").UsePrimary();

        AssertOnPrimary(async ? await tagged.SingleAsync() : tagged.Single());
        AssertLastDecision("primary", "tagged-primary");
        // The read above ran on the primary, so monotonic reads send the context's next read to the standby only once it has
        // replayed what the primary had then: wait for that (earlier tests' writes may still be replaying on a loaded machine).
        await Servers.WaitForReplayAsync(Servers.Standby);
        AssertOnReplica(await WhereAmI(context, async));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Ambient_primary_scope_covers_every_context_until_disposed(bool async)
    {
        await using var first = Cluster.NewContext();
        await using var second = Cluster.NewContext();

        using (EfReplicaScope.ForcePrimary())
        {
            await Task.Yield(); // the choice flows with the async call
            AssertOnPrimary(await WhereAmI(first, async));
            AssertOnPrimary(await WhereAmI(second, async));
            AssertLastDecision("primary", "primary-scope");
        }

        Assert.That(EfReplicaScope.IsPrimaryForced, Is.False);
        // The reads above ran on the primary, so monotonic reads send the scope's next read to the standby only once it has
        // replayed what the primary had then: wait for that (earlier tests' writes may still be replaying on a loaded machine).
        await Servers.WaitForReplayAsync(Servers.Standby);
        AssertOnReplica(await WhereAmI(first, async));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task In_primary_mode_after_a_write_the_context_reads_from_the_primary_until_its_end(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, options => options.ReadYourWrites = ReadYourWritesMode.Primary);
        await using (var context = cluster.NewContext())
        {
            AssertOnReplica(await WhereAmI(context, async));
            context.People.Add(new Person { Name = UniqueName("ryw") });
            _ = async ? await context.SaveChangesAsync() : context.SaveChanges();

            AssertOnPrimary(await WhereAmI(context, async));
            Assert.That((cluster.Recorder.Last.Target, cluster.Recorder.Last.Reason), Is.EqualTo(("primary", "after-write")));
            AssertOnPrimary(await WhereAmI(context, async));
        }

        await using var next = cluster.NewContext();
        AssertOnReplica(await WhereAmI(next, async));
    }
}
