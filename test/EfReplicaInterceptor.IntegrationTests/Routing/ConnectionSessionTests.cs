using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>
/// A connection the application holds open keeps its session: once a command needed the primary, everything after it
/// on that connection runs there, and the application's own use of EF's connection stays on the primary.
/// </summary>
public sealed class ConnectionSessionTests : RoutingTestBase
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task Temp_table_created_on_a_held_connection_is_found_by_later_reads(bool async)
    {
        await using var context = Cluster.NewContext();
        if (async)
        {
            await context.Database.OpenConnectionAsync();
        }
        else
        {
            context.Database.OpenConnection();
        }

        AssertOnReplica(await WhereAmI(context, async)); // nothing needed the primary yet
        await context.Database.ExecuteSqlRawAsync("CREATE TEMP TABLE scratch AS SELECT inet_server_port() AS \"Value\"");
        var query = context.Database.SqlQueryRaw<int>("SELECT \"Value\" FROM scratch");
        var port = async ? await query.SingleAsync() : query.Single();

        Assert.That(port, Is.EqualTo(Servers.Primary.Port));
        AssertLastDecision("primary", "session-pinned");
        AssertOnPrimary(await WhereAmI(context, async));
        await context.Database.CloseConnectionAsync();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Session_setting_pins_the_held_connection_until_it_closes(bool async)
    {
        await using var context = Cluster.NewContext();
        await context.Database.OpenConnectionAsync();
        await context.Database.ExecuteSqlRawAsync("SET application_name = 'pinned-session'");
        var query = context.Database.SqlQueryRaw<string>("SELECT current_setting('application_name') AS \"Value\"");

        var name = async ? await query.SingleAsync() : query.Single();

        Assert.That(name, Is.EqualTo("pinned-session"));
        AssertLastDecision("primary", "session-pinned");
        await context.Database.CloseConnectionAsync();
        // The pinned read ran on the primary, so monotonic reads send the next read to a standby only once it has replayed
        // what the primary had then: wait for that (earlier tests' writes may still be replaying on a loaded machine).
        await Servers.WaitForReplayAsync(Servers.Standby);
        AssertOnReplica(await WhereAmI(context, async)); // the pin ended with the session; SET is not a write
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Application_commands_on_EFs_own_connection_write_to_the_primary(bool async)
    {
        var name = UniqueName("ado");
        await using var context = Cluster.NewContext();
        await context.Database.OpenConnectionAsync();
        var connection = (NpgsqlConnection)context.Database.GetDbConnection();

        AssertOnReplica(await WhereAmI(context, async)); // EF's read went to the replica meanwhile

        await using (var command = new NpgsqlCommand("INSERT INTO people (name) VALUES (@name)", connection))
        {
            command.Parameters.AddWithValue("name", name + "-dapper-like");
            _ = async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery();
        }

        await using (var import = async
            ? await connection.BeginBinaryImportAsync("COPY people (name) FROM STDIN (FORMAT BINARY)")
            : connection.BeginBinaryImport("COPY people (name) FROM STDIN (FORMAT BINARY)"))
        {
            for (var i = 0; i < 3; i++)
            {
                await import.StartRowAsync();
                await import.WriteAsync(name + "-copy", NpgsqlDbType.Text);
            }

            _ = async ? await import.CompleteAsync() : import.Complete();
        }

        context.People.Add(new Person { Name = name + "-ef" });
        _ = async ? await context.SaveChangesAsync() : context.SaveChanges();
        await context.Database.CloseConnectionAsync();

        Assert.That(await PrimaryCount($"name LIKE '{name}%' AND written_on_port = {Servers.Primary.Port}"), Is.EqualTo(5));
    }
}
