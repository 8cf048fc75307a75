using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EfReplicaInterceptor.AspNetCore.Sample;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace EfReplicaInterceptor.AspNetCore.Tests;

/// <summary>
/// The sample application (<see cref="ProfileApp"/>) running on Kestrel on 127.0.0.1 with a dynamic port, against a real
/// primary and standby, its logs recorded, and an <see cref="HttpClient"/> that neither follows redirects nor keeps
/// cookies, so each test says exactly what a request carries and sees exactly what a response sets.
/// </summary>
internal sealed class WebApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WebApp(WebApplication app, Uri address, RoutingRecorder log, HttpClient client)
    {
        _app = app;
        Address = address;
        Log = log;
        Client = client;
    }

    public Uri Address { get; }

    public RoutingRecorder Log { get; }

    public HttpClient Client { get; }

    /// <summary>Starts the sample over <paramref name="servers"/> and waits until the standby serves its reads.</summary>
    /// <param name="servers">The primary and the standby.</param>
    /// <param name="consistency">Changes the middleware's options. Default: none.</param>
    /// <param name="https">Listen with HTTPS (a self-signed certificate made here) instead of HTTP.</param>
    /// <param name="mapMore">The test's own endpoints.</param>
    public static async Task<WebApp> StartAsync(
        PostgresReplicaSet servers,
        Action<EfReplicaConsistencyOptions>? consistency = null,
        bool https = false,
        Action<WebApplication>? mapMore = null)
    {
        var log = new RoutingRecorder();
        using var certificate = https ? SelfSignedCertificate() : null;
        var app = ProfileApp.Build(https ? [] : ["--urls", "http://127.0.0.1:0"], builder =>
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["EfReplica:Primary"] = servers.Primary.ConnectionString,
                ["EfReplica:Replicas:0:Name"] = "standby",
                ["EfReplica:Replicas:0:ConnectionString"] = servers.Standby.ConnectionString,
                ["EfReplica:HealthCheckInterval"] = "00:00:00.200",
                // Replay is paused for a few seconds at a time: the standby must stay in rotation meanwhile.
                ["EfReplica:MaxReplicaLag"] = "00:01:00",
            });
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
            builder.Logging.AddProvider(log);
            if (consistency is not null)
            {
                builder.Services.Configure(consistency);
            }

            if (certificate is not null)
            {
                var serverCertificate = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
                builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(serverCertificate)));
            }
        }, mapMore);

        await app.StartAsync();
        var address = new Uri(app.Urls.Single());
        var client = new HttpClient(new SocketsHttpHandler
        {
            UseCookies = false,
            AllowAutoRedirect = false,
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        })
        { BaseAddress = address };
        var web = new WebApp(app, address, log, client);
        try
        {
            await web.WaitUntilTheStandbyServesAsync();
            return web;
        }
        catch
        {
            await web.DisposeAsync();
            throw;
        }
    }

    /// <summary><c>POST /profiles/{id}</c> with a new name.</summary>
    public Task<HttpResponseMessage> UpdateAsync(int id, string name, Action<HttpRequestMessage>? carry = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/profiles/{id}") { Content = JsonContent.Create(new ProfileUpdate(name)) };
        carry?.Invoke(request);
        return Client.SendAsync(request);
    }

    /// <summary><c>GET /profiles/{id}</c>: the profile and the server that read it.</summary>
    public async Task<(ProfileView View, HttpResponseMessage Response)> ReadAsync(int id, Action<HttpRequestMessage>? carry = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/profiles/{id}");
        carry?.Invoke(request);
        var response = await Client.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        return ((await response.Content.ReadFromJsonAsync<ProfileView>())!, response);
    }

    /// <summary>The consistency cookie a response sets, or null.</summary>
    public static SetCookieHeaderValue? SetCookie(HttpResponseMessage response, string name = EfReplicaConsistencyOptions.DefaultCookieName)
        => response.Headers.TryGetValues(HeaderNames.SetCookie, out var values)
            ? SetCookieHeaderValue.ParseList([.. values]).SingleOrDefault(c => c.Name == name)
            : null;

    /// <summary>The consistency header of a response, or null.</summary>
    public static string? TokenHeader(HttpResponseMessage response)
        => response.Headers.TryGetValues(EfReplicaConsistencyOptions.DefaultHeaderName, out var values) ? values.Single() : null;

    public static Action<HttpRequestMessage> WithCookie(string token)
        => request => request.Headers.Add(HeaderNames.Cookie, $"{EfReplicaConsistencyOptions.DefaultCookieName}={token}");

    public static Action<HttpRequestMessage> WithHeader(string token)
        => request => request.Headers.Add(EfReplicaConsistencyOptions.DefaultHeaderName, token);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Log.Dispose();
    }

    private async Task WaitUntilTheStandbyServesAsync()
    {
        var clock = Stopwatch.StartNew();
        while (!(await ReadAsync(1)).View.ServerIsStandby)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(15))
            {
                Assert.Fail("the standby did not enter the rotation within 15 s");
            }

            await Task.Delay(50);
        }
    }

    private static X509Certificate2 SelfSignedCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }
}
