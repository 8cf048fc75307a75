using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Benchmarks.Infrastructure;

/// <summary>A catalogue row: what the query benchmarks read.</summary>
public sealed class Product
{
    public int Id { get; set; }

    public string Name { get; set; } = "";

    public decimal Price { get; set; }

    public int Stock { get; set; }
}

/// <summary>An order row: what the SaveChanges benchmarks insert.</summary>
public sealed class Order
{
    public long Id { get; set; }

    public int ProductId { get; set; }

    public int Quantity { get; set; }

    public string Customer { get; set; } = "";
}

/// <summary>The benchmarks' model: a small shop, mapped explicitly so the SQL EF sends is what an application's would be.</summary>
public sealed class CatalogContext(DbContextOptions<CatalogContext> options) : DbContext(options)
{
    /// <summary>Number of products seeded; ids run from 1 to this.</summary>
    public const int ProductCount = 1000;

    /// <summary>Run once on the primary; the standby gets it by replication.</summary>
    public const string Schema = """
        CREATE TABLE products (
            id int PRIMARY KEY,
            name text NOT NULL,
            price numeric(10, 2) NOT NULL,
            stock int NOT NULL);
        INSERT INTO products (id, name, price, stock)
            SELECT g, 'product-' || g, (g % 100) + 0.99, g % 17 FROM generate_series(1, 1000) g;
        CREATE TABLE orders (
            id bigserial PRIMARY KEY,
            product_id int NOT NULL,
            quantity int NOT NULL,
            customer text NOT NULL);
        ANALYZE;
        """;

    public DbSet<Product> Products => Set<Product>();

    public DbSet<Order> Orders => Set<Order>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Product>(product =>
        {
            product.ToTable("products");
            product.Property(p => p.Id).HasColumnName("id").ValueGeneratedNever();
            product.Property(p => p.Name).HasColumnName("name");
            product.Property(p => p.Price).HasColumnName("price").HasPrecision(10, 2);
            product.Property(p => p.Stock).HasColumnName("stock");
        });

        modelBuilder.Entity<Order>(order =>
        {
            order.ToTable("orders");
            order.Property(o => o.Id).HasColumnName("id");
            order.Property(o => o.ProductId).HasColumnName("product_id");
            order.Property(o => o.Quantity).HasColumnName("quantity");
            order.Property(o => o.Customer).HasColumnName("customer");
        });
    }
}
