using System.Text.Json.Serialization;
using EfReplicaInterceptor.Samples.Shop;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.AspNetCore.Sample;

/// <summary>What <c>GET /profiles/{id}</c> returns: the profile and the server that read it (as that server reports it).</summary>
public sealed record ProfileView(int Id, string Name, [property: JsonConverter(typeof(JsonStringEnumConverter<Mood>))] Mood Mood, int ServerPort, bool ServerIsStandby);

/// <summary>The body of <c>POST /profiles/{id}</c>.</summary>
public sealed record ProfileUpdate(string Name);

/// <summary>
/// The sample web application: a profile page that is updated (POST) and read back (GET). Everything that makes it
/// replica-aware is the <c>AddEfReplica</c> + <c>AddDbContext</c> wiring of the README's quickstart and one line,
/// <c>app.UseEfReplicaConsistency()</c>. The tests start this same application on Kestrel.
/// </summary>
public static class ProfileApp
{
    /// <summary>Builds the application from <paramref name="args"/> and configuration (section <c>EfReplica</c>).</summary>
    /// <param name="args">Command-line arguments (<c>--urls</c>, configuration overrides).</param>
    /// <param name="configure">Changes the builder before the application is built (the tests' servers, options). Default: none.</param>
    /// <param name="mapMore">Maps more endpoints after the sample's own (the tests'). Default: none.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null, Action<WebApplication>? mapMore = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory, // appsettings.json is copied next to the program
        });

        builder.Services.AddEfReplica(builder.Configuration.GetSection("EfReplica"), dataSource => dataSource.MapEnum<Mood>("mood"));
        builder.Services.AddDbContext<ShopContext>((sp, options) =>
        {
            var cluster = sp.GetRequiredService<EfReplicaCluster>();
            options.UseNpgsql(cluster.PrimaryDataSource, npgsql => npgsql.MapEnum<Mood>("mood"))
                   .AddInterceptors(cluster.Interceptors);
        });
        builder.Services.AddSingleton<WelcomeJobs>();
        builder.Services.AddHostedService<WelcomeJobWorker>();
        builder.Services.AddEfReplicaConsistency(); // optional: the defaults (cookie efr-consistency, header EfReplica-Consistency)
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseEfReplicaConsistency(); // the one line: each request restores the user's position and carries the new one back
        MapProfiles(app);
        mapMore?.Invoke(app);
        return app;
    }

    private static void MapProfiles(WebApplication app)
    {
        // Update a profile, then redirect to it (post/redirect/get): the 302 carries the new token in its Set-Cookie.
        app.MapPost("/profiles/{id:int}", async (int id, ProfileUpdate update, ShopContext db, CancellationToken ct) =>
        {
            var updated = await db.People.Where(p => p.Id == id)
                .ExecuteUpdateAsync(set => set.SetProperty(p => p.Name, update.Name), ct);
            return updated == 0 ? Results.NotFound() : Results.Redirect($"/profiles/{id}", permanent: false, preserveMethod: false);
        });

        // Read a profile, with the server that ran the read: a replica unless this user's last write is not replayed there yet.
        app.MapGet("/profiles/{id:int}", async (int id, ShopContext db, CancellationToken ct) =>
        {
            var profile = await db.People.Where(p => p.Id == id)
                .Select(p => new ProfileView(p.Id, p.Name, p.Mood, ShopDbContext.ServerPort(), ShopDbContext.InRecovery()))
                .SingleOrDefaultAsync(ct);
            return profile is null ? Results.NotFound() : Results.Ok(profile);
        });

        // Update a profile and queue a job that reads it: the job carries this request's token, as a message would.
        app.MapPost("/profiles/{id:int}/welcome", async (int id, ProfileUpdate update, ShopContext db, WelcomeJobs jobs, CancellationToken ct) =>
        {
            var updated = await db.People.Where(p => p.Id == id)
                .ExecuteUpdateAsync(set => set.SetProperty(p => p.Name, update.Name), ct);
            if (updated == 0)
            {
                return Results.NotFound();
            }

            var token = await EfReplicaScope.CurrentConsistency!.GetTokenAsync(ct); // the request's scope, from UseEfReplicaConsistency
            var job = new WelcomeJob(Guid.NewGuid(), id, token);
            await jobs.EnqueueAsync(job, ct);
            return Results.Accepted($"/jobs/{job.Id}");
        });

        // What a finished job read (404 until it has run).
        app.MapGet("/jobs/{id:guid}", (Guid id, WelcomeJobs jobs) => jobs.Done.TryGetValue(id, out var read) ? Results.Ok(read) : Results.NotFound());
    }
}
