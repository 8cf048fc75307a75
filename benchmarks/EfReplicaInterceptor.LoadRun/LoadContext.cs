using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.LoadRun;

/// <summary>One row of the load run's table. Seeded rows have fixed keys; rows written during the run get client-generated keys.</summary>
internal sealed class Item
{
    public Guid Id { get; set; }

    public int Worker { get; set; }

    public string Payload { get; set; } = string.Empty;
}

/// <summary>What a read returns: the row, and the port of the server that ran the query, as that server reports it.</summary>
internal sealed record ItemRead(Guid Id, string Payload, string ServerPort);

/// <summary>Server functions projected in LINQ.</summary>
internal static class ServerFunctions
{
    /// <summary>
    /// <c>current_setting(name)</c>: with <c>"port"</c> the port of the server that ran the query. Used rather than
    /// <c>inet_server_port()</c> (NULL when pgpool reaches its backends over a unix socket) and <c>pg_is_in_recovery()</c>
    /// (volatile, so pgpool would send every read carrying it to the primary).
    /// </summary>
    public static string CurrentSetting(string name) =>
        throw new InvalidOperationException($"{nameof(CurrentSetting)}({name}) runs only inside a LINQ query.");
}

internal sealed class LoadContext(DbContextOptions<LoadContext> options) : DbContext(options)
{
    public const string Schema =
        """
        CREATE TABLE items (id uuid PRIMARY KEY, worker integer NOT NULL, payload text NOT NULL);
        INSERT INTO items (id, worker, payload)
        SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 0, repeat('seed ', 8) || i
        FROM generate_series(1, 10000) AS i;
        ANALYZE items;
        """;

    public const int SeededRows = 10_000;

    public DbSet<Item> Items => Set<Item>();

    public static Guid SeededId(int number) => Guid.Parse($"00000000-0000-0000-0000-{number:D12}");

    /// <summary>The read every variant runs: one row by key, with the port of the server that answered.</summary>
    public Task<ItemRead?> ReadAsync(Guid id, CancellationToken ct) =>
        Items.AsNoTracking()
            .Where(item => item.Id == id)
            .Select(item => new ItemRead(item.Id, item.Payload, ServerFunctions.CurrentSetting("port")))
            .FirstOrDefaultAsync(ct);

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(typeof(ServerFunctions).GetMethod(nameof(ServerFunctions.CurrentSetting))!)
            .HasName("current_setting")
            .IsBuiltIn();

        modelBuilder.Entity<Item>(item =>
        {
            item.ToTable("items");
            item.Property(i => i.Id).HasColumnName("id").ValueGeneratedNever();
            item.Property(i => i.Worker).HasColumnName("worker");
            item.Property(i => i.Payload).HasColumnName("payload");
        });
    }
}
