using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.AspNetCore.Sample;

/// <summary>
/// <c>--tour</c>: two users drive the running sample over HTTP while the standby's replay is paused. Alice updates her
/// profile and reads it back with her cookie (the primary, since the standby has not replayed it); Bob, without a cookie,
/// reads the standby; a job queued by Alice's next update reads that update too; once replay resumes, Alice's reads return
/// to the standby. Each line says which server answered, as
/// that server reports it (<c>inet_server_port()</c>, <c>pg_is_in_recovery()</c>).
/// </summary>
internal static class SampleTour
{
    public static async Task<bool> RunAsync(Uri address, PostgresReplicaSet? servers, CancellationToken ct)
    {
        using var alice = NewUser();
        using var bob = NewUser();
        var ok = true;
        var name = $"Ada {DateTime.UtcNow:HH:mm:ss.fff}";
        Console.WriteLine();
        if (servers is not null)
        {
            await servers.Standby.PauseReplayAsync(ct);
            Console.WriteLine("The standby's replay is paused: it cannot show any new write until it resumes.");
        }

        try
        {
            using var post = await alice.PostAsJsonAsync(new Uri(address, "/profiles/1"), new ProfileUpdate(name), ct);
            var cookie = post.RequestMessage?.RequestUri?.AbsolutePath == "/profiles/1" && alice.Cookies.GetCookies(address).Count == 1;
            var afterRedirect = await post.Content.ReadFromJsonAsync<ProfileView>(ct);
            ok &= Report("Alice: POST /profiles/1, then the redirect's GET", afterRedirect, expectStandby: false, expectName: name, cookie ? "cookie" : "NONE") & cookie;

            var bobSees = await bob.GetFromJsonAsync<ProfileView>(new Uri(address, "/profiles/1"), ct);
            ok &= Report("Bob (no cookie): GET /profiles/1", bobSees, expectStandby: servers is null ? null : true, expectName: null, bob.Cookies.Count > 0 ? "cookie" : "none");

            var aliceAgain = await alice.GetFromJsonAsync<ProfileView>(new Uri(address, "/profiles/1"), ct);
            ok &= Report("Alice (cookie): GET /profiles/1", aliceAgain, expectStandby: false, expectName: name, "cookie");

            name = $"Ada {DateTime.UtcNow:HH:mm:ss.fff}";
            using var queued = await alice.PostAsJsonAsync(new Uri(address, "/profiles/1/welcome"), new ProfileUpdate(name), ct);
            ProfileView? job = null;
            for (var attempt = 0; attempt < 200 && job is null && queued.Headers.Location is { } location; attempt++)
            {
                using var poll = await alice.GetAsync(new Uri(address, location), ct);
                job = poll.IsSuccessStatusCode ? await poll.Content.ReadFromJsonAsync<ProfileView>(ct) : null;
                await Task.Delay(job is null ? 50 : 0, ct);
            }

            ok &= Report("A job queued by Alice's POST /profiles/1/welcome, with the request's token", job, expectStandby: false, expectName: name, "in the job's message");
        }
        finally
        {
            if (servers is not null)
            {
                await servers.Standby.ResumeReplayAsync(CancellationToken.None);
                Console.WriteLine("The standby's replay is resumed.");
            }
        }

        var clock = Stopwatch.StartNew();
        ProfileView? back = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            back = await alice.GetFromJsonAsync<ProfileView>(new Uri(address, "/profiles/1"), ct);
            if (back?.ServerIsStandby == true)
            {
                break;
            }

            await Task.Delay(50, ct);
        }

        ok &= Report($"Alice (cookie): GET /profiles/1 until the standby serves it ({clock.ElapsedMilliseconds} ms)", back, expectStandby: true, expectName: name, "cookie");
        Console.WriteLine();
        Console.WriteLine(ok ? "Every request ran where it should and Alice always read her own update." : "A request did not behave (MISMATCH above).");
        return ok;
    }

    private static bool Report(string step, ProfileView? view, bool? expectStandby, string? expectName, string token)
    {
        var server = view is null ? "no answer" : $"{(view.ServerIsStandby ? "standby" : "primary")} (port {view.ServerPort})";
        var ok = view is not null
            && (expectStandby is null || view.ServerIsStandby == expectStandby)
            && (expectName is null || view.Name == expectName);
        Console.WriteLine($"{(ok ? "ok      " : "MISMATCH")} {step}: read by the {server}, name '{view?.Name}' (token: {token})");
        return ok;
    }

    private static User NewUser() => new();

    /// <summary>A browser: a cookie jar, redirects followed.</summary>
    private sealed class User : HttpClient
    {
        public User()
            : this(new CookieContainer())
        {
        }

        private User(CookieContainer cookies)
            : base(new SocketsHttpHandler { CookieContainer = cookies, AllowAutoRedirect = true, UseCookies = true })
        {
            Cookies = cookies;
        }

        public CookieContainer Cookies { get; }
    }
}
