using Microsoft.EntityFrameworkCore;

namespace QuickstartWeb;

// What the quickstart takes as the application's own: a context with orders, an enum mapped to a PostgreSQL enum, and a
// checkout to run inside a primary scope.
public enum Mood
{
    Happy,
    Sad,
}

public sealed class Order
{
    public int Id { get; set; }

    public string Status { get; set; } = "";
}

public sealed class ShopContext(DbContextOptions<ShopContext> options) : DbContext(options)
{
    public DbSet<Order> Orders => Set<Order>();
}

public sealed class Checkout(ShopContext db)
{
    public async Task RunAsync() => await db.Orders.CountAsync();
}
