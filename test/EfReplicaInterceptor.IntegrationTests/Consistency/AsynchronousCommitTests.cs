using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// Read-your-writes under asynchronous commit, a common production setting: a committed transaction's commit record may sit
/// in the WAL buffers for up to <c>wal_writer_delay</c> (200 ms), so <c>pg_current_wal_lsn()</c> (the write position) can
/// be before it, and a replica that has replayed "the position" may not have the commit. A read right after each write in
/// the same context must see it, with <c>synchronous_commit = off</c> server-wide and with <c>SET LOCAL
/// synchronous_commit = off</c> inside the writing transaction.
/// </summary>
[NonParallelizable]
public sealed class AsynchronousCommitTests
{
    private const int Iterations = 30;
    private PostgresReplicaSet _servers = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        var options = new PostgresReplicaSetOptions();
        options.ExtraConfiguration.Add("synchronous_commit = off");
        _servers = await ShopServers.StartAsync(options: options);
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_read_after_SaveChanges_sees_the_write_under_asynchronous_commit(bool setLocal)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers);
        var misses = 0;
        var onReplica = 0;
        for (var i = 0; i < Iterations; i++)
        {
            await using var context = cluster.NewContext();
            var name = $"async-commit-{Guid.NewGuid():N}";
            if (setLocal)
            {
                // Server-wide asynchronous commit here too; SET LOCAL proves the per-transaction form goes the same way.
                await using var transaction = await context.Database.BeginTransactionAsync();
                await context.Database.ExecuteSqlRawAsync("SET LOCAL synchronous_commit = off");
                context.People.Add(new Person { Name = name });
                await context.SaveChangesAsync();
                await transaction.CommitAsync();
            }
            else
            {
                context.People.Add(new Person { Name = name });
                await context.SaveChangesAsync();
            }

            var seen = await context.People.AsNoTracking().CountAsync(p => p.Name == name);
            var side = await context.WhereAmI().SingleAsync();
            misses += seen == 1 ? 0 : 1;
            onReplica += side.InRecovery ? 1 : 0;
            await Task.Delay(100); // between writes, the WAL writer flushes (every 200 ms): the next commit starts unflushed
        }

        TestContext.Out.WriteLine($"setLocal={setLocal}: {misses} of {Iterations} reads missed their write; {onReplica} of the follow-up reads ran on the replica");
        Assert.That(misses, Is.Zero, "a read did not see its own write under asynchronous commit");
    }
}
