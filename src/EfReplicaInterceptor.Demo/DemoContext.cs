using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Demo;

/// <summary>A PostgreSQL enum, mapped on the primary's and the replica's data source alike.</summary>
internal enum Mood
{
    Happy,
    Sad,
    Meh,
}

internal sealed class Person
{
    public int Id { get; set; }

    public string Name { get; set; } = "";

    public Mood Mood { get; set; }

    /// <summary>Column default <c>inet_server_port()</c>: the port of the server that ran the INSERT, read back by RETURNING.</summary>
    public int WrittenOnPort { get; set; }

    /// <summary>Column default <c>pg_is_in_recovery()</c>: whether the server that ran the INSERT was a standby.</summary>
    public bool? WrittenInRecovery { get; set; }

    /// <summary>Set by the ExecuteUpdate step to <c>inet_server_port()</c> of the server that ran the UPDATE.</summary>
    public int? TouchedOnPort { get; set; }

    /// <summary>Set by the ExecuteUpdate step to <c>pg_is_in_recovery()</c> of the server that ran the UPDATE.</summary>
    public bool? TouchedInRecovery { get; set; }
}

/// <summary>A row the background writer inserts on the primary while replay is paused, so the primary's WAL moves on.</summary>
internal sealed class Heartbeat
{
    public long Id { get; set; }

    public DateTimeOffset At { get; set; }
}

/// <summary>
/// A row the failover step writes with a client-generated key (<see cref="Id"/>), so each write can be looked up on the
/// promoted server afterwards. The table has no unique constraint on purpose: a write applied twice would show as a duplicate.
/// </summary>
internal sealed class Order
{
    public Guid Id { get; set; }

    /// <summary>The writer's attempt number.</summary>
    public int Attempt { get; set; }

    /// <summary>Column default <c>inet_server_port()</c>: the port of the server that ran the INSERT, read back by RETURNING.</summary>
    public int WrittenOnPort { get; set; }

    /// <summary>Column default <c>pg_is_in_recovery()</c>: whether the server that ran the INSERT was a standby.</summary>
    public bool? WrittenInRecovery { get; set; }
}

/// <summary>Where a command ran, as the server that ran it reports it.</summary>
internal sealed record ServerSide(int Port, bool InRecovery);

internal sealed class DemoContext(DbContextOptions<DemoContext> options) : DbContext(options)
{
    /// <summary>Run once on the primary; the standby gets it by streaming replication.</summary>
    public const string Schema = """
        CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh');
        CREATE TABLE people (
            id serial PRIMARY KEY,
            name text NOT NULL,
            mood mood NOT NULL DEFAULT 'happy',
            written_on_port int NOT NULL DEFAULT inet_server_port(),
            written_in_recovery boolean NOT NULL DEFAULT pg_is_in_recovery(),
            touched_on_port int,
            touched_in_recovery boolean);
        CREATE TABLE heartbeats (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
        CREATE SEQUENCE tickets;
        CREATE TABLE orders (
            id uuid NOT NULL,
            attempt int NOT NULL,
            written_on_port int NOT NULL DEFAULT inet_server_port(),
            written_in_recovery boolean NOT NULL DEFAULT pg_is_in_recovery());
        INSERT INTO people (name, mood) SELECT 'seed-' || g, (ARRAY['happy','sad','meh']::mood[])[1 + g % 3] FROM generate_series(1, 20) g;
        """;

    public DbSet<Person> People => Set<Person>();

    public DbSet<Heartbeat> Heartbeats => Set<Heartbeat>();

    public DbSet<Order> Orders => Set<Order>();

    /// <summary>Translated to <c>inet_server_port()</c>: the port of the server that runs the query.</summary>
    public static int ServerPort() => throw new NotSupportedException("Only for use in queries.");

    /// <summary>Translated to <c>pg_is_in_recovery()</c>: true on a standby.</summary>
    public static bool InRecovery() => throw new NotSupportedException("Only for use in queries.");

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(typeof(DemoContext).GetMethod(nameof(ServerPort))!).HasName("inet_server_port").IsBuiltIn();
        modelBuilder.HasDbFunction(typeof(DemoContext).GetMethod(nameof(InRecovery))!).HasName("pg_is_in_recovery").IsBuiltIn();
        modelBuilder.Entity<Person>(person =>
        {
            person.ToTable("people");
            person.Property(p => p.Id).HasColumnName("id");
            person.Property(p => p.Name).HasColumnName("name");
            person.Property(p => p.Mood).HasColumnName("mood");
            person.Property(p => p.WrittenOnPort).HasColumnName("written_on_port").HasDefaultValueSql("inet_server_port()");
            person.Property(p => p.WrittenInRecovery).HasColumnName("written_in_recovery").HasDefaultValueSql("pg_is_in_recovery()");
            person.Property(p => p.TouchedOnPort).HasColumnName("touched_on_port");
            person.Property(p => p.TouchedInRecovery).HasColumnName("touched_in_recovery");
        });
        modelBuilder.Entity<Heartbeat>(heartbeat =>
        {
            heartbeat.ToTable("heartbeats");
            heartbeat.Property(h => h.Id).HasColumnName("id");
            heartbeat.Property(h => h.At).HasColumnName("at");
        });
        modelBuilder.Entity<Order>(order =>
        {
            order.ToTable("orders");
            order.Property(o => o.Id).HasColumnName("id").ValueGeneratedNever();
            order.Property(o => o.Attempt).HasColumnName("attempt");
            order.Property(o => o.WrittenOnPort).HasColumnName("written_on_port").HasDefaultValueSql("inet_server_port()");
            order.Property(o => o.WrittenInRecovery).HasColumnName("written_in_recovery").HasDefaultValueSql("pg_is_in_recovery()");
        });
    }
}

/// <summary>Shape of the raw SQL queries (<c>SqlQueryRaw</c>) that report where they ran.</summary>
internal sealed class RawServerSide
{
    public long Value { get; set; }

    public int Port { get; set; }

    public bool InRecovery { get; set; }
}
