using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.Samples.Shop;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EfReplicaInterceptor.Demo;

/// <summary>Starts the servers and the host, runs the <see cref="Workload"/>, prints the summary, and cleans up whatever happens.</summary>
internal static class DemoRun
{
    /// <returns>True when every step ran where, and for the reason, the README says it should.</returns>
    public static async Task<bool> RunAsync(string[] args, CancellationToken ct)
    {
        var started = TimeProvider.System.GetTimestamp();
        DemoConsole.Line("EfReplicaInterceptor demo: one DbContext, reads on a hot standby, everything else on the primary.");
        DemoConsole.Line();
        DemoConsole.Line("Starting a PostgreSQL primary and a streaming hot standby on loopback, with the shared shop schema ...");
        var starting = Stopwatch.StartNew();
        await using var servers = await ShopServers.StartAsync(standbys: 1, ct: ct);
        try
        {
            DemoConsole.Line($"   primary on port {servers.Primary.Port}, standby on port {servers.Standby.Port} (ready in {starting.Elapsed.TotalSeconds:0.0} s)");
            DemoConsole.Line($"   EfReplica:Primary is multi-host: ports {servers.Primary.Port} and {servers.Standby.Port}, Target Session Attributes=primary, Host Recheck Seconds=1");
            DemoConsole.Line("   schema created on the primary and replayed by the standby: people (50 rows, a mood enum), ticks, failover_orders, sequence tickets");

            var capture = new RoutingCapture(TimeProvider.System, started);
            using var host = BuildHost(args, servers, capture);
            DemoConsole.Line();
            DemoConsole.Line("Starting the host (AddEfReplica with the \"EfReplica\" section, AddDbContext<ShopContext> with cluster.Interceptors) ...");
            await host.StartAsync(ct);
            try
            {
                var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
                var options = host.Services.GetRequiredService<IOptions<EfReplicaOptions>>().Value;
                DemoConsole.Line($"   cluster '{cluster.Name}', replicas: {string.Join(", ", cluster.ReplicaNames)}; "
                    + $"MaxReplicaLag {options.MaxReplicaLag.TotalSeconds:0.###} s, HealthCheckInterval {options.HealthCheckInterval.TotalMilliseconds:0} ms");

                var workload = new Workload(servers, host.Services, capture, ct);
                await workload.RunAsync();
                return PrintSummary(workload.Results);
            }
            finally
            {
                await host.StopAsync(CancellationToken.None);
            }
        }
        finally
        {
            DemoConsole.Line();
            DemoConsole.Line("Stopping the servers and removing their files ...");
        }
    }

    /// <summary>The README's quickstart, with the started servers' connection strings filled into the "EfReplica" section.</summary>
    private static IHost BuildHost(string[] args, PostgresReplicaSet servers, RoutingCapture capture)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory, // appsettings.json is copied next to the program
        });

        // appsettings.json holds the demo's settings and placeholders for the servers, which are only known now.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:Primary"] = PrimaryConnectionString(servers),
            ["EfReplica:Replicas:0:ConnectionString"] = servers.Standby.ConnectionString,
        });

        // Warnings and errors on the console; the library's own events (Debug and up) go to the capture, which keeps the
        // routing decisions and prints the library's events of Information and up in line with the workload's output.
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddSimpleConsole(console => console.SingleLine = true);
        builder.Logging.AddFilter<ConsoleLoggerProvider>("EfReplicaInterceptor", LogLevel.None);

        // The failover step makes writes fail on purpose and reports each outcome itself; EF's own error events for them
        // (the failed command and SaveChanges, with stack traces) would bury that report.
        builder.Logging.AddFilter<ConsoleLoggerProvider>("Microsoft.EntityFrameworkCore.Database.Command", LogLevel.None);
        builder.Logging.AddFilter<ConsoleLoggerProvider>("Microsoft.EntityFrameworkCore.Database.Connection", LogLevel.None);
        builder.Logging.AddFilter<ConsoleLoggerProvider>("Microsoft.EntityFrameworkCore.Update", LogLevel.None);
        builder.Logging.AddProvider(capture);
        builder.Logging.AddFilter<RoutingCapture>("EfReplicaInterceptor", LogLevel.Debug);

        builder.Services.AddEfReplica(
            builder.Configuration.GetSection("EfReplica"),
            dataSource => dataSource.MapEnum<Mood>("mood"));

        builder.Services.AddDbContext<ShopContext>((sp, options) =>
        {
            var cluster = sp.GetRequiredService<EfReplicaCluster>();
            options.UseEfReplicaCluster(cluster, npgsql => npgsql.MapEnum<Mood>("mood"));
        });

        return builder.Build();
    }

    /// <summary>
    /// The README's multi-host primary: every server, <c>Target Session Attributes=primary</c>, and <c>Host Recheck Seconds=1</c>,
    /// so that after the failover step promotes the standby new connections find it without a restart.
    /// </summary>
    private static string PrimaryConnectionString(PostgresReplicaSet servers)
        => new NpgsqlConnectionStringBuilder(servers.MultiHostPrimaryConnectionString) { HostRecheckSeconds = 1 }.ConnectionString;

    private static bool PrintSummary(IReadOnlyList<StepResult> results)
    {
        string[] header = ["#", "step", "expected", "ran on", "reason", "ok"];
        var rows = results
            .Select(r => new[] { r.Number.ToString(System.Globalization.CultureInfo.InvariantCulture), r.Title, r.Expected, r.RanOn, r.Reason, r.Ok ? "ok" : "MISMATCH" })
            .ToList();
        var widths = header.Select((title, column) => rows.Select(row => row[column].Length).Append(title.Length).Max()).ToArray();
        string Format(string[] cells) => string.Join(" | ", cells.Select((cell, column) => column == 0 ? cell.PadLeft(widths[column]) : cell.PadRight(widths[column]))).TrimEnd();

        DemoConsole.Line();
        DemoConsole.Line("Summary");
        DemoConsole.Line(Format(header));
        DemoConsole.Line(string.Join("-|-", widths.Select(width => new string('-', width))));
        foreach (var row in rows)
        {
            DemoConsole.Line(Format(row));
        }

        var failed = results.Count(r => !r.Ok);
        DemoConsole.Line();
        DemoConsole.Line(failed == 0
            ? $"All {results.Count} steps ran where the routing rules say they should."
            : $"{failed} of {results.Count} steps misbehaved (MISMATCH above).");
        return failed == 0;
    }
}
