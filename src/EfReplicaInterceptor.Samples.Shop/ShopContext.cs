using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Samples.Shop;

/// <summary>
/// The one model of the integration tests, the demo and the benchmarks: <see cref="Schema"/> creates its tables and
/// <see cref="OnModelCreating"/> maps them, explicitly, so the SQL EF sends is what an application's would be. Every context
/// type derives from this one (<see cref="ShopContext"/>; the cluster tests add a type per named cluster or tenant), so
/// they all share the one model configuration.
/// </summary>
public abstract class ShopDbContext(DbContextOptions options) : DbContext(options)
{
    /// <summary>Number of products seeded; ids run from 1 to this.</summary>
    public const int ProductCount = 1000;

    /// <summary>Number of items seeded; their keys are <see cref="SeededItemId"/> of 1 to this.</summary>
    public const int SeededItemCount = 10_000;

    /// <summary>Run once on the primary (<see cref="ShopServers.StartAsync"/>); the standbys get it by streaming replication.</summary>
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
        INSERT INTO people (name, mood) SELECT 'seed-' || g, (ARRAY['happy','sad','meh']::mood[])[1 + g % 3] FROM generate_series(1, 50) g;
        CREATE SEQUENCE tickets;
        CREATE TABLE ticks (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT clock_timestamp());
        INSERT INTO ticks DEFAULT VALUES;
        CREATE TABLE orders (id uuid PRIMARY KEY, writer int NOT NULL);
        CREATE TABLE failover_orders (
            id uuid NOT NULL,
            attempt int NOT NULL,
            written_on_port int NOT NULL DEFAULT inet_server_port(),
            written_in_recovery boolean NOT NULL DEFAULT pg_is_in_recovery());
        CREATE TABLE products (
            id int PRIMARY KEY,
            name text NOT NULL,
            price numeric(10, 2) NOT NULL,
            stock int NOT NULL);
        INSERT INTO products (id, name, price, stock)
            SELECT g, 'product-' || g, (g % 100) + 0.99, g % 17 FROM generate_series(1, 1000) g;
        CREATE TABLE purchases (
            id bigserial PRIMARY KEY,
            product_id int NOT NULL,
            quantity int NOT NULL,
            customer text NOT NULL);
        CREATE TABLE items (id uuid PRIMARY KEY, worker integer NOT NULL, payload text NOT NULL);
        INSERT INTO items (id, worker, payload)
            SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 0, repeat('seed ', 8) || i
            FROM generate_series(1, 10000) AS i;
        ANALYZE;
        """;

    public DbSet<Person> People => Set<Person>();

    public DbSet<Tick> Ticks => Set<Tick>();

    public DbSet<Order> Orders => Set<Order>();

    public DbSet<FailoverOrder> FailoverOrders => Set<FailoverOrder>();

    public DbSet<Product> Products => Set<Product>();

    public DbSet<Purchase> Purchases => Set<Purchase>();

    public DbSet<Item> Items => Set<Item>();

    /// <summary>The key of seeded item <paramref name="number"/> (1 to <see cref="SeededItemCount"/>).</summary>
    public static Guid SeededItemId(int number) => Guid.Parse($"00000000-0000-0000-0000-{number:D12}");

    /// <summary>Translated to <c>inet_server_port()</c>: the port of the server that runs the query.</summary>
    public static int ServerPort() => throw new NotSupportedException("Only for use in queries.");

    /// <summary>Translated to <c>pg_is_in_recovery()</c>: true on a standby.</summary>
    public static bool InRecovery() => throw new NotSupportedException("Only for use in queries.");

    /// <summary>
    /// Translated to <c>current_setting(name)</c>: with <c>"port"</c> the port of the server that ran the query. The load run
    /// uses it rather than <c>inet_server_port()</c> (NULL when pgpool reaches its backends over a unix socket) and
    /// <c>pg_is_in_recovery()</c> (volatile, so pgpool would send every read carrying it to the primary).
    /// </summary>
    public static string CurrentSetting(string name) => throw new NotSupportedException($"{nameof(CurrentSetting)}({name}) is only for use in queries.");

    /// <summary>The first person, with where the query ran: the question every routing test asks.</summary>
    public IQueryable<ServerSide> WhereAmI()
        => People.OrderBy(p => p.Id).Select(p => new ServerSide(ServerPort(), InRecovery())).Take(1);

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(typeof(ShopDbContext).GetMethod(nameof(ServerPort))!).HasName("inet_server_port").IsBuiltIn();
        modelBuilder.HasDbFunction(typeof(ShopDbContext).GetMethod(nameof(InRecovery))!).HasName("pg_is_in_recovery").IsBuiltIn();
        modelBuilder.HasDbFunction(typeof(ShopDbContext).GetMethod(nameof(CurrentSetting))!).HasName("current_setting").IsBuiltIn();
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
        modelBuilder.Entity<Tick>(tick =>
        {
            tick.ToTable("ticks");
            tick.Property(t => t.Id).HasColumnName("id");
            tick.Property(t => t.CreatedAt).HasColumnName("created_at").HasDefaultValueSql("clock_timestamp()");
        });
        modelBuilder.Entity<Order>(order =>
        {
            order.ToTable("orders");
            order.Property(o => o.Id).HasColumnName("id").ValueGeneratedNever();
            order.Property(o => o.Writer).HasColumnName("writer");
        });
        modelBuilder.Entity<FailoverOrder>(order =>
        {
            order.ToTable("failover_orders");
            order.Property(o => o.Id).HasColumnName("id").ValueGeneratedNever();
            order.Property(o => o.Attempt).HasColumnName("attempt");
            order.Property(o => o.WrittenOnPort).HasColumnName("written_on_port").HasDefaultValueSql("inet_server_port()");
            order.Property(o => o.WrittenInRecovery).HasColumnName("written_in_recovery").HasDefaultValueSql("pg_is_in_recovery()");
        });
        modelBuilder.Entity<Product>(product =>
        {
            product.ToTable("products");
            product.Property(p => p.Id).HasColumnName("id").ValueGeneratedNever();
            product.Property(p => p.Name).HasColumnName("name");
            product.Property(p => p.Price).HasColumnName("price").HasPrecision(10, 2);
            product.Property(p => p.Stock).HasColumnName("stock");
        });
        modelBuilder.Entity<Purchase>(purchase =>
        {
            purchase.ToTable("purchases");
            purchase.Property(p => p.Id).HasColumnName("id");
            purchase.Property(p => p.ProductId).HasColumnName("product_id");
            purchase.Property(p => p.Quantity).HasColumnName("quantity");
            purchase.Property(p => p.Customer).HasColumnName("customer");
        });
        modelBuilder.Entity<Item>(item =>
        {
            item.ToTable("items");
            item.Property(i => i.Id).HasColumnName("id").ValueGeneratedNever();
            item.Property(i => i.Worker).HasColumnName("worker");
            item.Property(i => i.Payload).HasColumnName("payload");
        });
    }
}

/// <summary>The context of the shared model that the routing tests, the demo and the benchmarks use.</summary>
public sealed class ShopContext(DbContextOptions<ShopContext> options) : ShopDbContext(options);
