using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Support;

public enum Mood
{
    Happy,
    Sad,
    Meh,
}

public sealed class Person
{
    public int Id { get; set; }

    public string Name { get; set; } = "";

    public Mood Mood { get; set; }

    /// <summary>Filled by the server that ran the INSERT (column default <c>inet_server_port()</c>).</summary>
    public int WrittenOnPort { get; set; }

    public int? TouchedOnPort { get; set; }
}

/// <summary>A row a writer inserts on a schedule; the server stamps it.</summary>
public sealed class Tick
{
    public long Id { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>A write with a client-generated key, so its presence can be checked after a failover.</summary>
public sealed class Order
{
    public Guid Id { get; set; }

    public int Writer { get; set; }
}

/// <summary>Where a query ran, as the server reports it.</summary>
public sealed record ServerSide(int Port, bool InRecovery);

public sealed class ShopContext(DbContextOptions<ShopContext> options) : DbContext(options)
{
    /// <summary>The schema every routing test relies on; run on the primary once per server set.</summary>
    public const string Schema = """
        CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh');
        CREATE TABLE people (
            id serial PRIMARY KEY,
            name text NOT NULL,
            mood mood NOT NULL DEFAULT 'happy',
            written_on_port int NOT NULL DEFAULT inet_server_port(),
            touched_on_port int);
        CREATE SEQUENCE tickets;
        CREATE TABLE ticks (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT clock_timestamp());
        INSERT INTO ticks DEFAULT VALUES;
        CREATE TABLE orders (id uuid PRIMARY KEY, writer int NOT NULL);
        INSERT INTO people (name, mood) SELECT 'seed-' || g, (ARRAY['happy','sad','meh']::mood[])[1 + g % 3] FROM generate_series(1, 50) g;
        """;

    public DbSet<Person> People => Set<Person>();

    public DbSet<Tick> Ticks => Set<Tick>();

    public DbSet<Order> Orders => Set<Order>();

    /// <summary>Translated to <c>inet_server_port()</c>: the port of the server that runs the query.</summary>
    public static int ServerPort() => throw new NotSupportedException("Only for use in queries.");

    /// <summary>Translated to <c>pg_is_in_recovery()</c>: true on a standby.</summary>
    public static bool InRecovery() => throw new NotSupportedException("Only for use in queries.");

    public IQueryable<ServerSide> WhereAmI()
        => People.OrderBy(p => p.Id).Select(p => new ServerSide(ServerPort(), InRecovery())).Take(1);

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(typeof(ShopContext).GetMethod(nameof(ServerPort))!).HasName("inet_server_port").IsBuiltIn();
        modelBuilder.HasDbFunction(typeof(ShopContext).GetMethod(nameof(InRecovery))!).HasName("pg_is_in_recovery").IsBuiltIn();
        modelBuilder.Entity<Person>(person =>
        {
            person.ToTable("people");
            person.Property(p => p.Id).HasColumnName("id");
            person.Property(p => p.Name).HasColumnName("name");
            person.Property(p => p.Mood).HasColumnName("mood");
            person.Property(p => p.WrittenOnPort).HasColumnName("written_on_port").HasDefaultValueSql("inet_server_port()");
            person.Property(p => p.TouchedOnPort).HasColumnName("touched_on_port");
        });
        modelBuilder.Entity<Order>(order =>
        {
            order.ToTable("orders");
            order.Property(o => o.Id).HasColumnName("id").ValueGeneratedNever();
            order.Property(o => o.Writer).HasColumnName("writer");
        });
        modelBuilder.Entity<Tick>(tick =>
        {
            tick.ToTable("ticks");
            tick.Property(t => t.Id).HasColumnName("id");
            tick.Property(t => t.CreatedAt).HasColumnName("created_at").HasDefaultValueSql("clock_timestamp()");
        });
    }
}
