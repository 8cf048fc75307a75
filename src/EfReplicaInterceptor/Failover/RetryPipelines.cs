using Polly;
using Polly.Retry;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// The one place the library builds Polly pipelines: a bounded retry with exponential backoff and jitter, as set by
/// <see cref="FailoverOptions"/> (<see cref="FailoverOptions.BaseDelay"/>, <see cref="FailoverOptions.MaxDelay"/>), on the
/// cluster's <see cref="TimeProvider"/>. An empty pipeline when there is nothing to retry.
/// </summary>
internal static class RetryPipelines
{
    /// <param name="name">The strategy's name, seen in Polly's telemetry.</param>
    /// <param name="attempts">How many retries (0: none).</param>
    /// <param name="options">The delays.</param>
    /// <param name="shouldHandle">Which outcomes are retried.</param>
    /// <param name="timeProvider">The clock of the delays.</param>
    public static ResiliencePipeline Build(
        string name,
        int attempts,
        FailoverOptions options,
        Func<RetryPredicateArguments<object>, ValueTask<bool>> shouldHandle,
        TimeProvider timeProvider)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = timeProvider };
        if (attempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                Name = name,
                MaxRetryAttempts = attempts,
                Delay = options.BaseDelay,
                MaxDelay = options.MaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = shouldHandle,
            });
        }

        return builder.Build();
    }
}
