using System.Collections.Concurrent;
using System.Threading.Channels;
using EfReplicaInterceptor.Samples.Shop;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.AspNetCore.Sample;

/// <summary>A queued job and the consistency token of the request that queued it.</summary>
public sealed record WelcomeJob(Guid Id, int ProfileId, string? ConsistencyToken);

/// <summary>
/// An in-memory queue standing in for a message broker: the request that updates a profile queues a "welcome" job with
/// its consistency token, and <see cref="WelcomeJobWorker"/> restores the token before it reads the profile, so the job
/// sees the update even when it runs before any replica has replayed it.
/// </summary>
public sealed class WelcomeJobs
{
    private readonly Channel<WelcomeJob> _queue = Channel.CreateUnbounded<WelcomeJob>();

    /// <summary>What each finished job read, by job id.</summary>
    public ConcurrentDictionary<Guid, ProfileView> Done { get; } = new();

    /// <summary>Queues a job.</summary>
    public ValueTask EnqueueAsync(WelcomeJob job, CancellationToken ct) => _queue.Writer.WriteAsync(job, ct);

    internal IAsyncEnumerable<WelcomeJob> ReadAllAsync(CancellationToken ct) => _queue.Reader.ReadAllAsync(ct);
}

/// <summary>Runs the queued <see cref="WelcomeJob"/>s, each in a consistency scope restored from its token.</summary>
internal sealed partial class WelcomeJobWorker(WelcomeJobs jobs, IServiceScopeFactory scopes, ILogger<WelcomeJobWorker> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await foreach (var job in jobs.ReadAllAsync(stoppingToken))
        {
            try
            {
                // The token came from this application, so the cluster's own InvalidTokenHandling (Throw) is right here.
                using var consistency = EfReplicaScope.BeginConsistency(job.ConsistencyToken);
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<ShopContext>();
                var profile = await db.People.Where(p => p.Id == job.ProfileId)
                    .Select(p => new ProfileView(p.Id, p.Name, p.Mood, ShopDbContext.ServerPort(), ShopDbContext.InRecovery()))
                    .SingleAsync(stoppingToken);
                jobs.Done[job.Id] = profile;
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                JobFailed(logger, job.Id, exception);
            }
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Welcome job {JobId} failed")]
    private static partial void JobFailed(ILogger logger, Guid jobId, Exception exception);
}
