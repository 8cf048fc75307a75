using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>An enum the type tests create while the library runs (the shop's schema has none of it).</summary>
internal enum Weather
{
    Sunny,
    Rainy,
}

internal sealed class Forecast
{
    public int Id { get; set; }

    public Weather Weather { get; set; }
}

/// <summary>The forecasts table, its enum mapped in EF and in Npgsql as the README's wiring does.</summary>
internal sealed class ForecastContext(DbContextOptions<ForecastContext> options) : DbContext(options)
{
    /// <summary>The enum and its table, created on the primary after the library started.</summary>
    public const string Schema = "CREATE TYPE weather AS ENUM ('sunny', 'rainy'); CREATE TABLE forecasts (id serial PRIMARY KEY, weather weather NOT NULL)";

    public DbSet<Forecast> Forecasts => Set<Forecast>();

    /// <summary>The data sources' side of the mapping (<c>configureDataSource</c>).</summary>
    public static void MapTypes(NpgsqlDataSourceBuilder builder) => builder.MapEnum<Weather>("weather");

    /// <summary>A context routed by <paramref name="cluster"/>.</summary>
    public static ForecastContext Create(EfReplicaCluster cluster)
        => new(new DbContextOptionsBuilder<ForecastContext>().UseNpgsql(cluster.PrimaryDataSource, npgsql => npgsql.MapEnum<Weather>("weather")).UseEfReplicaRouting(cluster).Options);

    protected override void OnModelCreating(ModelBuilder modelBuilder)
        => modelBuilder.Entity<Forecast>(entity =>
        {
            entity.ToTable("forecasts");
            entity.Property(forecast => forecast.Id).HasColumnName("id");
            entity.Property(forecast => forecast.Weather).HasColumnName("weather");
        });
}
