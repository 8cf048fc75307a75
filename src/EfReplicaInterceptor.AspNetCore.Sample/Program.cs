using EfReplicaInterceptor.AspNetCore.Sample;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.Samples.Shop;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

// ./build/demo.sh --web [--tour]: the sample web application on http://127.0.0.1:5080 (or --urls), against a PostgreSQL
// primary and streaming hot standby it starts on loopback; with EfReplica:Primary (and EfReplica:Replicas) configured, for
// example as environment variables EfReplica__Primary=..., against your servers instead. With --tour it drives itself
// with HttpClient (update, read back with and without the cookie, standby replay paused) and exits: 0 when every request
// ran where it should, 1 when one did not.
var tour = args.Contains("--tour");
var appArgs = args.Where(a => a != "--tour").ToArray();
if (!appArgs.Any(a => a.StartsWith("--urls", StringComparison.Ordinal)))
{
    appArgs = [.. appArgs, "--urls", "http://127.0.0.1:5080"];
}

using var stopping = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stopping.Cancel(); };

PostgresReplicaSet? servers = null;
try
{
    var external = Environment.GetEnvironmentVariable("EfReplica__Primary") is { Length: > 0 }
        || appArgs.Any(a => a.StartsWith("--EfReplica:Primary", StringComparison.Ordinal));
    if (!external)
    {
        Console.WriteLine("Starting a PostgreSQL primary and a streaming hot standby on loopback ...");
        servers = await ShopServers.StartAsync(standbys: 1, ct: stopping.Token);
        Console.WriteLine($"   primary on port {servers.Primary.Port}, standby on port {servers.Standby.Port}");
    }

    await using var app = ProfileApp.Build(appArgs, builder =>
    {
        if (servers is not null)
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["EfReplica:Primary"] = servers.Primary.ConnectionString,
                ["EfReplica:Replicas:0:Name"] = "standby",
                ["EfReplica:Replicas:0:ConnectionString"] = servers.Standby.ConnectionString,
            });
        }
    });
    await app.StartAsync(stopping.Token);
    var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    if (tour)
    {
        var ok = await SampleTour.RunAsync(new Uri(address), servers, stopping.Token);
        await app.StopAsync(CancellationToken.None);
        return ok ? 0 : 1;
    }

    Console.WriteLine($$"""

        Listening on {{address}} (Ctrl+C stops the application and the servers). Try:
          curl -i -c jar -b jar -X POST -H 'Content-Type: application/json' -d '{"name":"Ada"}' {{address}}/profiles/1
          curl -s -b jar {{address}}/profiles/1      # with the cookie: sees the update (primary until the standby has replayed it)
          curl -s {{address}}/profiles/1             # without: the standby
        """);
    await app.WaitForShutdownAsync(stopping.Token);
    return 0;
}
catch (OperationCanceledException) when (stopping.IsCancellationRequested)
{
    return 130;
}
catch (PostgresBinariesNotFoundException exception)
{
    Console.Error.WriteLine($"The sample needs the PostgreSQL server programs: {exception.Message}");
    return 2;
}
finally
{
    if (servers is not null)
    {
        Console.WriteLine("Stopping the servers and removing their files ...");
        await servers.DisposeAsync();
    }
}
