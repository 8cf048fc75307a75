using EfReplicaInterceptor;
using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;

namespace PackageTests;

/// <summary>
/// The packages as an application receives them: EfReplicaInterceptor.Testing starts a real primary and streaming standby,
/// EfReplicaInterceptor routes an application's context over them, and the server that ran each query says where it ran
/// (<c>inet_server_port()</c>, <c>pg_is_in_recovery()</c> selected beside the data), not the library.
/// </summary>
public sealed class WhereReadsRunTests
{
    private PostgresReplicaSet _servers = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await PostgresReplicaSet.StartAsync(standbys: 1);
        await _servers.Primary.ExecuteAsync("""
            CREATE TABLE "Orders" ("Id" serial PRIMARY KEY, "Status" text NOT NULL);
            INSERT INTO "Orders" ("Status") VALUES ('seed');
            """);
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [Test]
    public async Task A_plain_read_runs_on_the_standby()
    {
        await _servers.WaitForReplayAsync(_servers.Standby);
        await using var cluster = await StartClusterAsync();
        await using var db = new ShopContext(new DbContextOptionsBuilder<ShopContext>().UseEfReplicaCluster(cluster).Options);

        var ranOn = await db.Orders.OrderBy(o => o.Id)
            .Select(o => new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery()))
            .FirstAsync();

        Assert.That(ranOn, Is.EqualTo(new ServerSide(_servers.Standby.Port, InRecovery: true)));
    }

    [Test]
    public async Task A_read_right_after_a_write_runs_on_the_primary_and_sees_the_write_while_the_standby_is_behind()
    {
        await _servers.WaitForReplayAsync(_servers.Standby);
        await using var cluster = await StartClusterAsync();
        await _servers.Standby.PauseReplayAsync();   // the standby cannot have the write: only the primary can answer right
        try
        {
            await using var db = new ShopContext(new DbContextOptionsBuilder<ShopContext>().UseEfReplicaCluster(cluster).Options);
            var order = new Order { Status = "placed" };
            db.Orders.Add(order);
            await db.SaveChangesAsync();

            var read = await db.Orders.Where(o => o.Id == order.Id)
                .Select(o => new { o.Status, RanOn = new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery()) })
                .SingleOrDefaultAsync();

            Assert.That(read?.Status, Is.EqualTo("placed"), "The read right after the write did not see it.");
            Assert.That(read!.RanOn, Is.EqualTo(new ServerSide(_servers.Primary.Port, InRecovery: false)));
        }
        finally
        {
            await _servers.Standby.ResumeReplayAsync();
        }
    }

    /// <summary>A cluster over the set, after the monitor's first round (the standby is in rotation), as the host starts it.</summary>
    private async Task<EfReplicaCluster> StartClusterAsync()
    {
        var cluster = EfReplicaCluster.Create(new EfReplicaOptions
        {
            Primary = _servers.Primary.ConnectionString,
            Replicas = { new ReplicaEndpointOptions { Name = "standby", ConnectionString = _servers.Standby.ConnectionString } },
        });
        await cluster.RefreshHealthAsync();
        return cluster;
    }
}
