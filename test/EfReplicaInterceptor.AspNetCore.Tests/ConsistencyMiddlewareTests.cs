using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Buffers.Text;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using EfReplicaInterceptor.AspNetCore.Sample;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Net.Http.Headers;

namespace EfReplicaInterceptor.AspNetCore.Tests;

/// <summary>
/// <c>app.UseEfReplicaConsistency()</c> driven over real HTTP (Kestrel on loopback, <see cref="HttpClient"/>) against a real
/// primary and streaming standby. Whenever a test needs a replica read to be able to miss a write, the standby's replay is
/// paused first; which server ran a read is what that server says (<c>inet_server_port()</c>, <c>pg_is_in_recovery()</c>),
/// returned by the sample's GET.
/// </summary>
[NonParallelizable]
public sealed class ConsistencyMiddlewareTests
{
    private PostgresReplicaSet _servers = null!;
    private WebApp _web = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _servers = await ShopServers.StartAsync();
        try
        {
            _web = await WebApp.StartAsync(_servers, mapMore: MapTestEndpoints);
        }
        catch
        {
            await _servers.DisposeAsync();
            throw;
        }
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        await _web.DisposeAsync();
        await _servers.DisposeAsync();
    }

    [TearDown]
    public async Task ResumeReplay()
    {
        await _servers.Standby.ResumeReplayAsync();
        await _servers.WaitForReplayAsync(_servers.Standby);
    }

    [Test]
    public async Task A_write_then_a_read_with_the_returned_cookie_reads_the_write_while_a_read_without_it_reads_the_replica()
    {
        await _servers.Standby.PauseReplayAsync();
        var name = Unique("cookie");

        using var post = await _web.UpdateAsync(11, name);
        var cookie = WebApp.SetCookie(post);
        var (mine, mineResponse) = await _web.ReadAsync(11, WebApp.WithCookie(cookie?.Value.Value ?? ""));
        var (theirs, _) = await _web.ReadAsync(11);

        Assert.Multiple(() =>
        {
            Assert.That(post.StatusCode, Is.EqualTo(HttpStatusCode.Redirect));
            Assert.That(cookie, Is.Not.Null, "the write's response sets the consistency cookie");
            Assert.That(WebApp.TokenHeader(post), Is.EqualTo(cookie?.Value.Value), "and the same token in the header");
            Assert.That((mine.Name, mine.ServerIsStandby, mine.ServerPort), Is.EqualTo((name, false, _servers.Primary.Port)),
                "with the cookie the read sees the write: the primary, since the standby has not replayed it");
            Assert.That(WebApp.SetCookie(mineResponse), Is.Null, "a read that did not change the token sets no cookie");
            Assert.That((theirs.ServerIsStandby, theirs.ServerPort), Is.EqualTo((true, _servers.Standby.Port)), "without the cookie: the standby");
            Assert.That(theirs.Name, Is.Not.EqualTo(name), "which has not replayed the write: a read there would have missed it");
            AssertNoTokenLogged(cookie?.Value.Value);
        });
    }

    [Test]
    public async Task The_same_through_the_header()
    {
        await _servers.Standby.PauseReplayAsync();
        var name = Unique("header");

        using var post = await _web.UpdateAsync(12, name);
        var token = WebApp.TokenHeader(post);
        var (mine, mineResponse) = await _web.ReadAsync(12, WebApp.WithHeader(token ?? ""));
        var (theirs, _) = await _web.ReadAsync(12);

        Assert.Multiple(() =>
        {
            Assert.That(token, Is.Not.Null.And.Not.Empty);
            Assert.That((mine.Name, mine.ServerIsStandby), Is.EqualTo((name, false)), "with the header the read sees the write");
            Assert.That(WebApp.TokenHeader(mineResponse), Is.Null, "an unchanged token is not written again");
            Assert.That((theirs.ServerIsStandby, theirs.Name == name), Is.EqualTo((true, false)), "without it: the standby, which misses the write");
        });
    }

    [Test]
    public async Task A_request_without_a_token_reads_from_the_replica_and_gets_a_token_for_what_it_saw()
    {
        var (view, response) = await _web.ReadAsync(13);

        // Monotonic reads across requests: the token carries what the request's reads saw, so the user's next request never
        // reads older data on another replica.
        Assert.Multiple(() =>
        {
            Assert.That((view.ServerIsStandby, view.ServerPort), Is.EqualTo((true, _servers.Standby.Port)));
            Assert.That(WebApp.SetCookie(response)?.Value.Value, Does.StartWith("efr1."));
            Assert.That(WebApp.TokenHeader(response), Does.StartWith("efr1."));
        });
    }

    [TestCase("not-a-token", TestName = "A malformed cookie does not break the request")]
    [TestCase("foreign", TestName = "A cookie from another database cluster does not break the request")]
    public async Task A_bad_cookie_does_not_break_the_request(string token)
    {
        // The cluster keeps the library's default InvalidTokenHandling (Throw): the middleware's own default (Ignore) applies
        // to tokens that arrive with a request.
        token = token == "foreign" ? ForeignToken() : token;
        _web.Log.Clear();

        var (view, response) = await _web.ReadAsync(14, WebApp.WithCookie(token));

        var cookie = WebApp.SetCookie(response);
        Assert.Multiple(() =>
        {
            Assert.That(view.ServerIsStandby, Is.True, "the ignored token constrains nothing: the replica");
            // The bad value is replaced: by the token of what this request saw (monotonic reads), or dropped (expired).
            Assert.That(cookie?.Value.Value, Is.Not.Null.And.Not.EqualTo(token), "the response replaces the bad cookie");
            var value = cookie?.Value.Value ?? string.Empty;
            Assert.That(value.Length == 0 ? cookie?.Expires < DateTimeOffset.UtcNow : value.StartsWith("efr1.", StringComparison.Ordinal), Is.True,
                "with a valid token of this cluster, or by expiring it");
            Assert.That(_web.Log.AllEvents.Select(e => e.EventId), Does.Contain(1003), "the library says it ignored a token");
            AssertNoTokenLogged(token);
        });
    }

    [Test]
    public async Task With_InvalidTokenHandling_Throw_a_bad_cookie_fails_the_request()
    {
        await using var strict = await WebApp.StartAsync(_servers, options => options.InvalidTokenHandling = InvalidTokenHandling.Throw);

        using var response = await strict.Client.SendAsync(Get("/profiles/15", WebApp.WithCookie("not-a-token")));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
    }

    [Test]
    public async Task The_cookie_is_HttpOnly_SameSite_Lax_bounded_and_Secure_only_over_HTTPS()
    {
        await using var secure = await WebApp.StartAsync(_servers, https: true);

        using var overHttp = await _web.UpdateAsync(16, Unique("http"));
        using var overHttps = await secure.UpdateAsync(16, Unique("https"));

        var plain = WebApp.SetCookie(overHttp);
        var tls = WebApp.SetCookie(overHttps);
        Assert.Multiple(() =>
        {
            Assert.That(secure.Address.Scheme, Is.EqualTo("https"));
            foreach (var cookie in new[] { plain, tls })
            {
                Assert.That(cookie, Is.Not.Null);
                Assert.That(cookie!.HttpOnly, Is.True);
                Assert.That(cookie.SameSite, Is.EqualTo(Microsoft.Net.Http.Headers.SameSiteMode.Lax));
                Assert.That(cookie.MaxAge, Is.EqualTo(TimeSpan.FromMinutes(10)));
                Assert.That(cookie.Path.Value, Is.EqualTo("/"));
            }

            Assert.That(plain?.Secure, Is.False, "over HTTP the cookie cannot be Secure");
            Assert.That(tls?.Secure, Is.True, "over HTTPS it is");
        });
    }

    [Test]
    public async Task A_streamed_response_carries_the_token_because_it_is_written_before_the_response_starts()
    {
        await _servers.Standby.PauseReplayAsync();
        var name = Unique("stream");

        var request = new HttpRequestMessage(HttpMethod.Post, $"/test/stream/17?name={Uri.EscapeDataString(name)}");
        using var response = await _web.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var cookie = WebApp.SetCookie(response);
        var body = await response.Content.ReadAsStringAsync();
        var (mine, _) = await _web.ReadAsync(17, WebApp.WithCookie(cookie?.Value.Value ?? ""));

        Assert.Multiple(() =>
        {
            Assert.That(body, Is.EqualTo("first chunk;second chunk;"));
            Assert.That(cookie, Is.Not.Null, "the endpoint flushed before it ended: the cookie went out with the headers");
            Assert.That((mine.Name, mine.ServerIsStandby), Is.EqualTo((name, false)));
        });
    }

    [Test]
    public async Task A_queued_job_carrying_the_request_token_reads_the_write()
    {
        await _servers.Standby.PauseReplayAsync();
        var name = Unique("job");

        var request = new HttpRequestMessage(HttpMethod.Post, "/profiles/18/welcome") { Content = JsonContent.Create(new ProfileUpdate(name)) };
        using var accepted = await _web.Client.SendAsync(request);
        Assert.That(accepted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        ProfileView? read = null;
        var clock = Stopwatch.StartNew();
        while (read is null && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            using var job = await _web.Client.GetAsync(accepted.Headers.Location);
            read = job.StatusCode == HttpStatusCode.OK ? await job.Content.ReadFromJsonAsync<ProfileView>() : null;
            await Task.Delay(read is null ? 20 : 0);
        }

        Assert.That(read, Is.Not.Null, "the job did not run within 10 s");
        Assert.That((read!.Name, read.ServerIsStandby), Is.EqualTo((name, false)), "the job, run while replay is paused, saw the request's write");
    }

    [Test]
    public async Task An_endpoint_that_disables_the_scope_ignores_the_token_and_leaves_it_alone()
    {
        await _servers.Standby.PauseReplayAsync();
        var name = Unique("unscoped");
        using var post = await _web.UpdateAsync(19, name);
        var token = WebApp.SetCookie(post)?.Value.Value ?? "";

        using var withToken = await _web.Client.SendAsync(Get("/test/unscoped/19", WebApp.WithCookie(token)));
        var read = await withToken.Content.ReadFromJsonAsync<ProfileView>();
        using var withBadToken = await _web.Client.SendAsync(Get("/test/unscoped/19", WebApp.WithCookie("not-a-token")));

        Assert.Multiple(() =>
        {
            Assert.That((read?.ServerIsStandby, read?.Name == name), Is.EqualTo((true, false)), "no scope: the token is not restored, the standby reads");
            Assert.That(WebApp.SetCookie(withToken), Is.Null);
            Assert.That(WebApp.SetCookie(withBadToken), Is.Null, "not even a bad token is dropped");
        });
    }

    [Test]
    public async Task The_token_travels_only_by_the_carriers_switched_on()
    {
        await using var headerOnly = await WebApp.StartAsync(_servers, options => options.UseCookie = false);
        await using var cookieOnly = await WebApp.StartAsync(_servers, options => options.UseHeader = false);
        await _servers.Standby.PauseReplayAsync();

        using var toHeaderOnly = await headerOnly.UpdateAsync(20, Unique("header-only"));
        using var toCookieOnly = await cookieOnly.UpdateAsync(20, Unique("cookie-only"));
        var token = WebApp.SetCookie(toCookieOnly)?.Value.Value ?? "";
        var (readWithCookie, _) = await headerOnly.ReadAsync(20, WebApp.WithCookie(token));
        var (readWithHeader, _) = await cookieOnly.ReadAsync(20, WebApp.WithHeader(token));

        Assert.Multiple(() =>
        {
            Assert.That(WebApp.SetCookie(toHeaderOnly), Is.Null, "header only: no cookie is set");
            Assert.That(WebApp.TokenHeader(toHeaderOnly), Is.Not.Null.And.Not.Empty);
            Assert.That(WebApp.TokenHeader(toCookieOnly), Is.Null);
            Assert.That(token, Is.Not.Empty);
            Assert.That(readWithCookie.ServerIsStandby, Is.True, "header only: a cookie is not read");
            Assert.That(readWithHeader.ServerIsStandby, Is.True, "cookie only: a header is not read");
        });
    }

    [Test]
    public async Task Each_user_reads_their_own_update_and_pays_at_most_one_primary_round_trip_for_it()
    {
        const int Users = 100;
        // The standby applies WAL 300 ms late, so a read-back on it right after the POST would miss the update.
        await _servers.Standby.SetRecoveryMinApplyDelayAsync(TimeSpan.FromMilliseconds(300));
        using var counters = new ConsistencyCounters();
        int misses = 0, readBackOnPrimary = 0, bystandersOnStandby = 0, bystandersStale = 0, cookiesOnReads = 0;

        try
        {
            for (var user = 0; user < Users; user++)
            {
                var id = 21 + (user % 20);
                var name = Unique("user");
                using var post = await _web.UpdateAsync(id, name);
                var (mine, mineResponse) = await _web.ReadAsync(id, WebApp.WithCookie(WebApp.SetCookie(post)?.Value.Value ?? ""));
                var (bystander, _) = await _web.ReadAsync(id);
                misses += mine.Name == name ? 0 : 1;
                readBackOnPrimary += mine.ServerIsStandby ? 0 : 1;
                bystandersOnStandby += bystander.ServerIsStandby ? 1 : 0;
                bystandersStale += bystander.Name == name ? 0 : 1;
                cookiesOnReads += WebApp.SetCookie(mineResponse) is null ? 0 : 1;
            }
        }
        finally
        {
            await _servers.Standby.SetRecoveryMinApplyDelayAsync(TimeSpan.Zero);
        }

        TestContext.Out.WriteLine($"{Users} users (POST, GET with cookie, bystander GET; standby 300 ms behind): {misses} misses; read-backs on the primary {readBackOnPrimary}; "
            + $"bystander reads on the standby {bystandersOnStandby}, {bystandersStale} of them without the update; position captures {counters.Captures} ({(double)counters.Captures / Users:0.00} per POST); "
            + $"replica replay checks {counters.ReplayChecks}; cookies rewritten by reads {cookiesOnReads}");
        Assert.Multiple(() =>
        {
            Assert.That(misses, Is.Zero, "a user did not read their own update");
            // One capture for the POST's write, one for what the GET's primary read-back saw (its token carries it).
            Assert.That(counters.Captures, Is.LessThanOrEqualTo(2 * Users), "at most two primary round trips per user's write and read-back");
            Assert.That(bystandersOnStandby, Is.GreaterThanOrEqualTo(Users * 95 / 100), "requests without a token read the standby");
            Assert.That(bystandersStale, Is.GreaterThan(Users / 2), "the standby really was behind: a read-back there would have missed");
        });
    }

    [Test]
    public async Task When_the_position_cannot_be_captured_the_response_still_succeeds_without_a_token_and_says_why()
    {
        if (_servers.IsExternal)
        {
            Assert.Ignore("stops a primary: needs servers the test starts itself");
        }

        // Servers of its own: this test stops the primary.
        await using var own = await ShopServers.StartAsync();
        await using var web = await WebApp.StartAsync(own, mapMore: app => app.MapPost("/test/write-then-lose-the-primary/{id:int}", async (int id, ShopContext db) =>
        {
            await db.People.Where(p => p.Id == id).ExecuteUpdateAsync(set => set.SetProperty(p => p.Name, "lost"));
            await own.Primary.StopAsync(StopMode.Immediate);
            return Results.NoContent();
        }));

        using var response = await web.Client.PostAsync("/test/write-then-lose-the-primary/22", content: null);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent), "the write succeeded: the response must not fail after it");
            Assert.That(WebApp.SetCookie(response), Is.Null);
            Assert.That(WebApp.TokenHeader(response), Is.Null);
            Assert.That(web.Log.AllEvents.Where(e => e.EventId == 4000).Select(e => e.Level), Is.EqualTo(new[] { Microsoft.Extensions.Logging.LogLevel.Warning }),
                "event 4000 says the response carries no new token");
        });
    }

    private static void MapTestEndpoints(WebApplication app)
    {
        // Writes, then starts the response and streams it: the token must already be in the headers.
        app.MapPost("/test/stream/{id:int}", async (int id, string name, ShopContext db, HttpContext http) =>
        {
            await db.People.Where(p => p.Id == id).ExecuteUpdateAsync(set => set.SetProperty(p => p.Name, name));
            await http.Response.WriteAsync("first chunk;");
            await http.Response.Body.FlushAsync();
            await Task.Delay(50);
            await http.Response.WriteAsync("second chunk;");
        });

        // The sample's read, on an endpoint that opts out of the request scope.
        app.MapGet("/test/unscoped/{id:int}", (int id, ShopContext db) => db.People.Where(p => p.Id == id)
                .Select(p => new ProfileView(p.Id, p.Name, p.Mood, ShopDbContext.ServerPort(), ShopDbContext.InRecovery()))
                .SingleAsync())
            .DisableEfReplicaConsistency();
    }

    private static HttpRequestMessage Get(string path, Action<HttpRequestMessage> carry)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        carry(request);
        return request;
    }

    /// <summary>A well-formed token of another database cluster (system identifier 42).</summary>
    private static string ForeignToken()
    {
        Span<byte> payload = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(payload, 42);
        BinaryPrimitives.WriteUInt64BigEndian(payload[8..], 0x1_0000_0000);
        return "efr1." + Base64Url.EncodeToString(payload);
    }

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    private void AssertNoTokenLogged(string? token)
    {
        Assert.That(token, Is.Not.Null.And.Not.Empty);
        Assert.That(_web.Log.EverythingLogged.Where(message => message.Contains(token!, StringComparison.Ordinal)), Is.Empty, "a token was logged");
    }

    /// <summary>The library's read-your-writes counters (primary position captures, replica replay checks).</summary>
    private sealed class ConsistencyCounters : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<string, long> _counts = new();

        public ConsistencyCounters()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == EfReplicaDiagnostics.MeterName && instrument.Name.StartsWith("efreplica.consistency.", StringComparison.Ordinal))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => _counts.AddOrUpdate(instrument.Name, value, (_, old) => old + value));
            _listener.Start();
        }

        public long Captures => _counts.GetValueOrDefault(EfReplicaDiagnostics.PositionCapturesCounterName);

        public long ReplayChecks => _counts.GetValueOrDefault(EfReplicaDiagnostics.ReplayChecksCounterName);

        public void Dispose() => _listener.Dispose();
    }
}
