using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.AspNetCore.Tests;

/// <summary>
/// Issue 21 (several clusters in one request): an application with two named clusters, each with a real primary and a
/// streaming standby whose replay is paused, over real HTTP. A request that writes to both clusters gets one token; the
/// next request, carrying it, reads both writes back (on each cluster's primary, since neither standby has replayed them),
/// and a request that reads only one cluster passes the other's position on unchanged. Which server ran each read is what
/// the server says.
/// </summary>
[NonParallelizable]
public sealed class TwoClusterConsistencyTests
{
    private PostgresReplicaSet _orders = null!;
    private PostgresReplicaSet _analytics = null!;
    private WebApplication _app = null!;
    private HttpClient _client = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        // Two database clusters, not two copies of one: their system identifiers differ, as in production.
        var starting = new[] { ShopServers.StartAsync(), ShopServers.StartAsync(options: new PostgresReplicaSetOptions { SystemIdentifierVariant = 1 }) };
        try
        {
            await Task.WhenAll(starting);
        }
        catch
        {
            foreach (var started in starting.Where(task => task.IsCompletedSuccessfully))
            {
                await started.Result.DisposeAsync();
            }

            throw;
        }

        (_orders, _analytics) = (starting[0].Result, starting[1].Result);
        _app = BuildApp();
        await _app.StartAsync();
        _client = new HttpClient(new SocketsHttpHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = new Uri(_app.Urls.Single()) };
        await WaitUntilBothStandbysServeAsync();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _client?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        await _orders.DisposeAsync();
        await _analytics.DisposeAsync();
    }

    [TearDown]
    public async Task ResumeReplay()
    {
        foreach (var set in new[] { _orders, _analytics })
        {
            await set.Standby.ResumeReplayAsync();
            await set.WaitForReplayAsync(set.Standby);
        }
    }

    [Test]
    public async Task A_request_that_writes_to_two_clusters_reads_both_writes_back_in_its_next_request()
    {
        await _orders.Standby.PauseReplayAsync();
        await _analytics.Standby.PauseReplayAsync();
        var name = $"two-{Guid.NewGuid():N}";

        using var write = await _client.PostAsync($"/both/{name}", content: null);
        Assert.That(write.StatusCode, Is.EqualTo(HttpStatusCode.OK), await write.Content.ReadAsStringAsync());
        var token = Token(write);
        var (mine, mineResponse) = await ReadAsync($"/both/{name}", token);
        var (theirs, _) = await ReadAsync($"/both/{name}", token: null);

        Assert.Multiple(() =>
        {
            Assert.That(token, Does.StartWith("efr2."), "one token for both clusters");
            Assert.That(mine.Orders, Is.EqualTo(new Seen(1, _orders.Primary.Port, Standby: false)), "orders: the write, on its primary");
            Assert.That(mine.Analytics, Is.EqualTo(new Seen(1, _analytics.Primary.Port, Standby: false)), "analytics: the write, on its primary");
            Assert.That(Token(mineResponse), Is.Null, "a read that did not change the token writes none");
            Assert.That(theirs.Orders, Is.EqualTo(new Seen(0, _orders.Standby.Port, Standby: true)), "without the token: orders' standby, which misses the write");
            Assert.That(theirs.Analytics, Is.EqualTo(new Seen(0, _analytics.Standby.Port, Standby: true)), "without the token: analytics' standby, which misses the write");
        });
    }

    [Test]
    public async Task A_request_that_reads_one_cluster_passes_the_other_clusters_position_on()
    {
        await _orders.Standby.PauseReplayAsync();
        await _analytics.Standby.PauseReplayAsync();
        var name = $"one-{Guid.NewGuid():N}";

        using var write = await _client.PostAsync($"/both/{name}", content: null);
        var token = Token(write);
        var (ordersOnly, ordersResponse) = await ReadAsync($"/orders/{name}", token);
        var carried = Token(ordersResponse) ?? token; // unchanged: the client keeps the one it has
        var (both, _) = await ReadAsync($"/both/{name}", carried);

        Assert.Multiple(() =>
        {
            Assert.That(ordersOnly.Orders, Is.EqualTo(new Seen(1, _orders.Primary.Port, Standby: false)));
            Assert.That(carried, Does.StartWith("efr2."), "analytics' part went on through a request that did not use analytics");
            Assert.That(both.Analytics, Is.EqualTo(new Seen(1, _analytics.Primary.Port, Standby: false)), "analytics still reads its write");
        });
    }

    private WebApplication BuildApp()
    {
        var builder = WebApplication.CreateBuilder(["--urls", "http://127.0.0.1:0"]);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:00.200",
            ["EfReplica:MaxReplicaLag"] = "00:01:00", // replay is paused for a few seconds at a time: the standbys stay in rotation
            ["EfReplica:Clusters:orders:Primary"] = _orders.Primary.ConnectionString,
            ["EfReplica:Clusters:orders:Replicas:0:Name"] = "orders-standby",
            ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = _orders.Standby.ConnectionString,
            ["EfReplica:Clusters:analytics:Primary"] = _analytics.Primary.ConnectionString,
            ["EfReplica:Clusters:analytics:Replicas:0:Name"] = "analytics-standby",
            ["EfReplica:Clusters:analytics:Replicas:0:ConnectionString"] = _analytics.Standby.ConnectionString,
        });
        builder.Logging.ClearProviders();
        builder.Services.AddEfReplicaClusters(builder.Configuration.GetSection("EfReplica"), TestCluster.MapTypes);
        builder.Services.AddDbContext<OrdersDb>((sp, options) => options.UseEfReplicaCluster(sp, "orders", npgsql => npgsql.MapEnum<Mood>("mood")));
        builder.Services.AddDbContext<AnalyticsDb>((sp, options) => options.UseEfReplicaCluster(sp, "analytics", npgsql => npgsql.MapEnum<Mood>("mood")));
        builder.Services.AddEfReplicaConsistency();
        var app = builder.Build();
        app.UseEfReplicaConsistency();
        app.MapPost("/both/{name}", async (string name, OrdersDb orders, AnalyticsDb analytics, CancellationToken ct) =>
        {
            orders.People.Add(new Person { Name = name });
            analytics.People.Add(new Person { Name = name });
            await orders.SaveChangesAsync(ct);
            await analytics.SaveChangesAsync(ct);
            return Results.Ok();
        });
        app.MapGet("/both/{name}", async (string name, OrdersDb orders, AnalyticsDb analytics, CancellationToken ct)
            => Results.Ok(new Reads(await SeeAsync(orders, name, ct), await SeeAsync(analytics, name, ct))));
        app.MapGet("/orders/{name}", async (string name, OrdersDb orders, CancellationToken ct)
            => Results.Ok(new Reads(await SeeAsync(orders, name, ct), null)));
        return app;
    }

    /// <summary>How many people named <paramref name="name"/> the server that ran the read has, and which server it was.</summary>
    private static async Task<Seen> SeeAsync(ShopDbContext context, string name, CancellationToken ct)
        => await context.People.GroupBy(_ => new { Port = ShopDbContext.ServerPort(), Standby = ShopDbContext.InRecovery() })
            .Select(g => new Seen(g.Count(p => p.Name == name), g.Key.Port, g.Key.Standby))
            .SingleAsync(ct);

    private async Task<(Reads Reads, HttpResponseMessage Response)> ReadAsync(string path, string? token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            request.Headers.Add(EfReplicaConsistencyOptions.DefaultHeaderName, token);
        }

        var response = await _client.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        return ((await response.Content.ReadFromJsonAsync<Reads>())!, response);
    }

    private static string? Token(HttpResponseMessage response)
        => response.Headers.TryGetValues(EfReplicaConsistencyOptions.DefaultHeaderName, out var values) ? values.Single() : null;

    private async Task WaitUntilBothStandbysServeAsync()
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var (reads, _) = await ReadAsync("/both/nobody", token: null);
            if (reads.Orders.Standby && reads.Analytics!.Standby)
            {
                return;
            }

            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "both standbys enter the rotation within 15 s");
            await Task.Delay(50);
        }
    }

    public sealed record Seen(int Count, int Port, bool Standby);

    public sealed record Reads(Seen Orders, Seen? Analytics);

    private sealed class OrdersDb(DbContextOptions<OrdersDb> options) : ShopDbContext(options);

    private sealed class AnalyticsDb(DbContextOptions<AnalyticsDb> options) : ShopDbContext(options);
}
