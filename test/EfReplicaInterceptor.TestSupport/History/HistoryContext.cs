using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.TestSupport.History;

/// <summary>
/// The history workload's model: registers whose values only grow. A session's own register is written with increasing
/// versions; shared counters are incremented by writers. "Older" is "smaller", which makes both session guarantees checkable
/// from values alone.
/// </summary>
public sealed class HistoryContext(DbContextOptions<HistoryContext> options) : DbContext(options)
{
    /// <summary>Run once on the primary; standbys get it by replication.</summary>
    public const string Schema = "CREATE TABLE IF NOT EXISTS h_registers (key text PRIMARY KEY, value bigint NOT NULL)";

    public DbSet<Register> Registers => Set<Register>();

    /// <summary>Translated to <c>inet_server_port()</c>: the port of the server that ran the query.</summary>
    public static int ServerPort() => throw new NotSupportedException("Only for use in queries.");

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(typeof(HistoryContext).GetMethod(nameof(ServerPort))!).HasName("inet_server_port").IsBuiltIn();
        modelBuilder.Entity<Register>(register =>
        {
            register.ToTable("h_registers");
            register.HasKey(r => r.Key);
            register.Property(r => r.Key).HasColumnName("key");
            register.Property(r => r.Value).HasColumnName("value");
        });
    }
}

/// <summary>A row of <c>h_registers</c>.</summary>
public sealed class Register
{
    public string Key { get; set; } = "";

    public long Value { get; set; }
}

/// <summary>A register as a read returned it, with the port of the server that ran the read.</summary>
public sealed class RegisterRead
{
    public string Key { get; set; } = "";

    public long Value { get; set; }

    public int Port { get; set; }
}
