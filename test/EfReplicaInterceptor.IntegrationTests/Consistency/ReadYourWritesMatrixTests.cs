using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// Read-your-writes under asynchronous commit, for every scope (the context lease, an ambient scope across two contexts, a
/// token carried to a new request) and every kind of write (SaveChanges, ExecuteUpdate, ExecuteDelete, raw SQL, an
/// explicit transaction), with <c>synchronous_commit = off</c> server-wide and with <c>SET LOCAL synchronous_commit = off</c>
/// in the writing transaction on an otherwise synchronous server. Under asynchronous commit a commit record can sit in the
/// WAL buffers for up to <c>wal_writer_delay</c>, behind the write position, so a replica that replayed "the position" may
/// not have the commit. The read-back asks the server that ran it what it sees (<c>count(*)</c>, <c>pg_is_in_recovery()</c>).
/// </summary>
[NonParallelizable]
public sealed class ReadYourWritesMatrixTests
{
    private const int Iterations = 8;
    private const int Slots = 400;
    private static int _nextSlot;
    private PostgresReplicaSet _servers = null!;

    public enum CommitMode
    {
        /// <summary><c>synchronous_commit = off</c> in the server's configuration.</summary>
        ServerWide,

        /// <summary>A synchronous server; every write runs in a transaction that starts with <c>SET LOCAL synchronous_commit = off</c>.</summary>
        SetLocal,
    }

    public enum Scope
    {
        Lease,
        Ambient,
        Token,
    }

    public enum WriteKind
    {
        SaveChanges,
        ExecuteUpdate,
        ExecuteDelete,
        RawSql,
        Transaction,
    }

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (var mode in Enum.GetValues<CommitMode>())
        {
            foreach (var scope in Enum.GetValues<Scope>())
            {
                foreach (var kind in Enum.GetValues<WriteKind>())
                {
                    // With SET LOCAL every kind already runs in an explicit transaction.
                    if (mode == CommitMode.SetLocal && kind == WriteKind.Transaction)
                    {
                        continue;
                    }

                    yield return new TestCaseData(mode, scope, kind);
                }
            }
        }
    }

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await ShopServers.StartAsync();
        await _servers.Primary.ExecuteAsync($"""
            INSERT INTO people (name) SELECT 'upd-' || g FROM generate_series(1, {Slots}) g;
            INSERT INTO people (name) SELECT 'del-' || g FROM generate_series(1, {Slots}) g;
            """);
        await _servers.WaitForReplayAsync(_servers.Standby);
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [TestCaseSource(nameof(Cases))]
    public async Task A_read_after_a_write_sees_it_under_asynchronous_commit(CommitMode mode, Scope scope, WriteKind kind)
    {
        await SetServerWideAsynchronousCommit(mode == CommitMode.ServerWide);
        await using var cluster = await TestCluster.CreateAsync(_servers);

        var (misses, onReplica) = await Run(cluster, mode, scope, kind, Iterations);

        TestContext.Out.WriteLine($"{mode}/{scope}/{kind}: {misses} of {Iterations} reads missed their write; {onReplica} read-backs ran on the replica");
        Assert.That(misses, Is.Zero, "a read did not see its scope's write under asynchronous commit");
    }

    [Test]
    public async Task With_the_write_position_captured_reads_miss_their_writes()
    {
        await SetServerWideAsynchronousCommit(true);
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.CaptureWritePositionForTests = true);

        var (misses, onReplica) = await Run(cluster, CommitMode.ServerWide, Scope.Lease, WriteKind.SaveChanges, 30);

        TestContext.Out.WriteLine($"write position captured: {misses} of 30 reads missed their write; {onReplica} read-backs ran on the replica");
        Assert.That(misses, Is.GreaterThan(0), "the matrix must be able to fail: the write position misses commits still in the WAL buffers");
    }

    private async Task SetServerWideAsynchronousCommit(bool off)
    {
        await _servers.Primary.ExecuteAsync(off ? "ALTER SYSTEM SET synchronous_commit = off" : "ALTER SYSTEM RESET synchronous_commit");
        await _servers.Primary.ExecuteAsync("SELECT pg_reload_conf()");
        var expected = off ? "off" : "on";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (await _servers.Primary.ScalarAsync<string>("SHOW synchronous_commit") != expected)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "the primary did not reload its configuration");
            await Task.Delay(20);
        }
    }

    private static async Task<(int Misses, int OnReplica)> Run(TestCluster cluster, CommitMode mode, Scope scope, WriteKind kind, int iterations)
    {
        int misses = 0, onReplica = 0;
        for (var i = 0; i < iterations; i++)
        {
            var slot = Interlocked.Increment(ref _nextSlot);
            Assert.That(slot, Is.LessThanOrEqualTo(Slots), "more iterations than seeded rows");
            var name = $"ryw-{mode}-{scope}-{kind}-{Guid.NewGuid():N}";
            var readBack = scope switch
            {
                Scope.Lease => await InLease(cluster, mode, kind, name, slot),
                Scope.Ambient => await InAmbientScope(cluster, mode, kind, name, slot),
                _ => await WithToken(cluster, mode, kind, name, slot),
            };

            var expected = kind == WriteKind.ExecuteDelete ? 0 : 1;
            misses += readBack.Count == expected ? 0 : 1;
            onReplica += readBack.InRecovery ? 1 : 0;
            await Task.Delay(100); // the WAL writer flushes every 200 ms: the next commit starts unflushed
        }

        return (misses, onReplica);
    }

    private static async Task<ReadBack> InLease(TestCluster cluster, CommitMode mode, WriteKind kind, string name, int slot)
    {
        await using var context = cluster.NewContext();
        await Write(context, mode, kind, name, slot);
        return await Read(context, kind, name, slot);
    }

    private static async Task<ReadBack> InAmbientScope(TestCluster cluster, CommitMode mode, WriteKind kind, string name, int slot)
    {
        using var scope = EfReplicaScope.BeginConsistency();
        await using (var writer = cluster.NewContext())
        {
            await Write(writer, mode, kind, name, slot);
        }

        await using var reader = cluster.NewContext();
        return await Read(reader, kind, name, slot);
    }

    private static async Task<ReadBack> WithToken(TestCluster cluster, CommitMode mode, WriteKind kind, string name, int slot)
    {
        string? token;
        using (var scope = EfReplicaScope.BeginConsistency())
        {
            await using var writer = cluster.NewContext();
            await Write(writer, mode, kind, name, slot);
            token = await scope.GetTokenAsync();
        }

        // The next request: a fresh async flow that knows only the token.
        Task<ReadBack> next;
        using (ExecutionContext.SuppressFlow())
        {
            next = Task.Run(async () =>
            {
                using var scope = EfReplicaScope.BeginConsistency(token);
                await using var reader = cluster.NewContext();
                return await Read(reader, kind, name, slot);
            });
        }

        return await next;
    }

    private static async Task Write(ShopContext context, CommitMode mode, WriteKind kind, string name, int slot)
    {
        IDbContextTransaction? transaction = null;
        if (mode == CommitMode.SetLocal || kind == WriteKind.Transaction)
        {
            transaction = await context.Database.BeginTransactionAsync();
            if (mode == CommitMode.SetLocal)
            {
                await context.Database.ExecuteSqlRawAsync("SET LOCAL synchronous_commit = off");
            }
        }

        switch (kind)
        {
            case WriteKind.SaveChanges or WriteKind.Transaction:
                context.People.Add(new Person { Name = name });
                await context.SaveChangesAsync();
                break;
            case WriteKind.ExecuteUpdate:
                var updated = await context.People.Where(p => p.Name == $"upd-{slot}").ExecuteUpdateAsync(s => s.SetProperty(p => p.Name, name));
                Assert.That(updated, Is.EqualTo(1));
                break;
            case WriteKind.ExecuteDelete:
                var deleted = await context.People.Where(p => p.Name == $"del-{slot}").ExecuteDeleteAsync();
                Assert.That(deleted, Is.EqualTo(1));
                break;
            default:
                await context.Database.ExecuteSqlRawAsync("INSERT INTO people (name) VALUES ({0})", name);
                break;
        }

        if (transaction is not null)
        {
            await transaction.CommitAsync();
            await transaction.DisposeAsync();
        }
    }

    /// <summary>What the server that ran the read-back sees: the written row (or, for a delete, the deleted one).</summary>
    private static Task<ReadBack> Read(ShopContext context, WriteKind kind, string name, int slot)
        => context.Database
            .SqlQueryRaw<ReadBack>("SELECT count(*)::int AS \"Count\", pg_is_in_recovery() AS \"InRecovery\" FROM people WHERE name = {0}", kind == WriteKind.ExecuteDelete ? $"del-{slot}" : name)
            .SingleAsync();

    private sealed record ReadBack(int Count, bool InRecovery);
}
