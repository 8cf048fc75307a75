using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// EF's schema work on a cluster whose standby applies WAL 3 s late, run by three application instances one after another
/// (a fresh cluster and context each, as three instances starting): every command on the primary, the schema made once.
/// Without the <c>schema</c> rule the existence checks ("is there a history table?", "are there tables?") are plain reads a
/// lagging replica answers "no".
/// </summary>
[NonParallelizable]
public sealed class SchemaWorkTests
{
    private const int Instances = 3;

    private static async Task<PostgresReplicaSet> StartLaggingServers()
    {
        var servers = await PostgresReplicaSet.StartAsync(standbys: 1);
        if (servers.IsExternal)
        {
            await servers.DisposeAsync();
            Assert.Ignore("Delaying a standby's replay needs servers started by the tests.");
        }

        await servers.Standby.SetRecoveryMinApplyDelayAsync(TimeSpan.FromSeconds(3));
        return servers;
    }

    private static async Task<TestCluster> StartInstance(PostgresReplicaSet servers)
        => await TestCluster.CreateAsync(servers, options =>
        {
            options.HealthCheckInterval = TimeSpan.FromMilliseconds(200);
            options.MaxReplicaLag = TimeSpan.FromSeconds(30); // the lagging standby stays in rotation: it would serve reads
        });

    private static NotesContext NewContext(TestCluster cluster)
    {
        var builder = new DbContextOptionsBuilder<NotesContext>();
        cluster.Configure(builder);
        builder.ConfigureWarnings(warnings => warnings.Ignore(RelationalEventId.PendingModelChangesWarning)); // no snapshot
        return new NotesContext(builder.Options);
    }

    private static Task<long> StandbyHasTable(PostgresReplicaSet servers, string table)
        => servers.Standby.ScalarAsync<long>($"SELECT count(*) FROM pg_class WHERE relname = '{table}'");

    [TestCase(false)]
    [TestCase(true)]
    public async Task Migrate_by_three_instances_runs_every_command_on_the_primary_and_applies_the_migration_once(bool async)
    {
        await using var servers = await StartLaggingServers();
        var routed = new List<RoutedCommand>();
        var standbyHadHistory = new List<long>();
        var replicaInRotation = new List<bool>();
        for (var instance = 0; instance < Instances; instance++)
        {
            await using var cluster = await StartInstance(servers);
            replicaInRotation.Add(cluster.Cluster.Replicas[0].IsAdmitted);
            standbyHadHistory.Add(await StandbyHasTable(servers, "__EFMigrationsHistory"));
            await using var context = NewContext(cluster);
            if (async)
            {
                await context.Database.MigrateAsync();
            }
            else
            {
                context.Database.Migrate();
            }

            routed.AddRange(cluster.Recorder.Commands);
        }

        var rows = await servers.Primary.ScalarAsync<long>("SELECT count(*) FROM \"__EFMigrationsHistory\"");
        var notes = await servers.Primary.ScalarAsync<long>("SELECT count(*) FROM pg_class WHERE relname = 'notes'");
        TestContext.Out.WriteLine($"{routed.Count} commands: {string.Join(", ", routed.GroupBy(c => (c.CommandSource, c.Target, c.Reason)).Select(g => $"{g.Count()}x {g.Key}"))}; "
            + $"standby had the history table at each instance's start: [{string.Join(", ", standbyHadHistory)}]; replica in rotation: [{string.Join(", ", replicaInRotation)}]");
        Assert.Multiple(() =>
        {
            Assert.That(routed, Is.Not.Empty, "the routing events were recorded");
            Assert.That(routed.Where(c => c.Target != "primary"), Is.Empty, "a schema command went to a replica");
            Assert.That(routed.Where(c => c.Reason != "schema"), Is.Empty, "every command of Migrate() is schema work");
            Assert.That(routed.Select(c => c.CommandSource).Distinct(), Is.EqualTo(new[] { "Migrations" }));
            Assert.That(rows, Is.EqualTo(1), "the history table has one row per migration");
            Assert.That(notes, Is.EqualTo(1));
            Assert.That(replicaInRotation, Is.All.True, "the lagging standby was in rotation: a read would have gone there");
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task EnsureCreated_by_three_instances_runs_every_command_on_the_primary_and_creates_the_schema_once(bool async)
    {
        await using var servers = await StartLaggingServers();
        var routed = new List<RoutedCommand>();
        var created = new List<bool>();
        var standbyHadTable = new List<long>();
        for (var instance = 0; instance < Instances; instance++)
        {
            await using var cluster = await StartInstance(servers);
            standbyHadTable.Add(await StandbyHasTable(servers, "notes"));
            await using var context = NewContext(cluster);
            created.Add(async ? await context.Database.EnsureCreatedAsync() : context.Database.EnsureCreated());
            Assert.That(async ? await context.Database.CanConnectAsync() : context.Database.CanConnect(), Is.True);
            routed.AddRange(cluster.Recorder.Commands);
        }

        TestContext.Out.WriteLine($"{routed.Count} commands: {string.Join(", ", routed.GroupBy(c => (c.CommandSource, c.Target, c.Reason)).Select(g => $"{g.Count()}x {g.Key}"))}; "
            + $"created: [{string.Join(", ", created)}]; standby had the table at each instance's start: [{string.Join(", ", standbyHadTable)}]");
        Assert.Multiple(() =>
        {
            Assert.That(routed.Where(c => c.Target != "primary"), Is.Empty, "a schema command went to a replica");
            Assert.That(routed.Where(c => c.Reason != "schema"), Is.Empty, "every command of EnsureCreated() and CanConnect() is schema work");
            Assert.That(routed.Count(c => c.CommandSource == "Unknown"), Is.EqualTo(Instances), "HasTables, which EF sends without a source, once per instance");
            Assert.That(created, Is.EqualTo(new[] { true, false, false }), "the schema was created by the first instance only");
        });
    }

    /// <summary>A table of notes, with one migration written by hand.</summary>
    public sealed class NotesContext(DbContextOptions<NotesContext> options) : DbContext(options)
    {
        public DbSet<Note> Notes => Set<Note>();

        protected override void OnModelCreating(ModelBuilder modelBuilder)
            => modelBuilder.Entity<Note>(note =>
            {
                note.ToTable("notes");
                note.Property(n => n.Id).ValueGeneratedNever();
            });
    }

    public sealed class Note
    {
        public int Id { get; set; }

        public string Text { get; set; } = "";
    }

    [DbContext(typeof(NotesContext))]
    [Migration("20261202000000_CreateNotes")]
    public sealed class CreateNotes : Migration
    {
        protected override void Up(MigrationBuilder migrationBuilder)
            => migrationBuilder.CreateTable(
                name: "notes",
                columns: table => new
                {
                    Id = table.Column<int>(type: "integer", nullable: false),
                    Text = table.Column<string>(type: "text", nullable: false),
                },
                constraints: table => table.PrimaryKey("PK_notes", x => x.Id));

        protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.DropTable(name: "notes");
    }
}
