using Microsoft.EntityFrameworkCore;

namespace PackageTests;

/// <summary>An application's own model, as small as the tests need: orders, and two server functions to ask where a query ran.</summary>
public sealed class Order
{
    public int Id { get; set; }

    public string Status { get; set; } = "";
}

/// <summary>Where a command ran, as the server that ran it reports it.</summary>
public sealed record ServerSide(int Port, bool InRecovery);

public sealed class ShopContext(DbContextOptions<ShopContext> options) : DbContext(options)
{
    public DbSet<Order> Orders => Set<Order>();

    /// <summary>Translated to <c>inet_server_port()</c>: the port of the server that runs the query.</summary>
    public static int ServerPort() => throw new NotSupportedException("Only for use in queries.");

    /// <summary>Translated to <c>pg_is_in_recovery()</c>: true on a standby.</summary>
    public static bool InRecovery() => throw new NotSupportedException("Only for use in queries.");

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(typeof(ShopContext).GetMethod(nameof(ServerPort))!).HasName("inet_server_port").IsBuiltIn();
        modelBuilder.HasDbFunction(typeof(ShopContext).GetMethod(nameof(InRecovery))!).HasName("pg_is_in_recovery").IsBuiltIn();
    }
}
