namespace EfReplicaInterceptor.Configuration;

/// <summary>The checks of <see cref="FailoverOptions"/> (section <c>Failover</c>) and of the deadlines, for <see cref="EfReplicaOptionsValidator"/>.</summary>
internal static class FailoverOptionsValidator
{
    /// <summary>The read deadline in force: <see cref="FailoverOptions.ReadDeadline"/> when set, else <c>HealthCheckInterval + HealthCheckTimeout</c>.</summary>
    public static TimeSpan ReadDeadline(EfReplicaOptions options)
        => options.Failover?.ReadDeadline ?? options.HealthCheckInterval + options.HealthCheckTimeout;

    /// <summary>Adds every problem with the failover settings of <paramref name="options"/> to <paramref name="failures"/>, each naming its setting.</summary>
    public static void Collect(EfReplicaOptions options, string prefix, List<string> failures)
    {
        var failover = options.Failover ?? new FailoverOptions();
        if (failover.MaxRetries is < 0 or > 10)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.MaxRetries)} must be between 0 and 10.");
        }

        if (failover.BaseDelay < TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.BaseDelay)} must not be negative.");
        }

        if (failover.MaxDelay <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.MaxDelay)} must be positive.");
        }

        if (failover.BaseDelay >= TimeSpan.Zero && failover.MaxDelay > TimeSpan.Zero && failover.BaseDelay > failover.MaxDelay)
        {
            var failoverPath = $"{prefix}{nameof(EfReplicaOptions.Failover)}";
            failures.Add($"{failoverPath}:{nameof(FailoverOptions.BaseDelay)} is longer than {failoverPath}:{nameof(FailoverOptions.MaxDelay)}: the longest backoff cannot be shorter than its base.");
        }

        if (failover.PrimaryWait is { } primaryWait && primaryWait <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.PrimaryWait)} must be positive when set.");
        }

        // The read deadline is enforced only while the server also fails to answer the monitor's probes: a healthy server
        // answers one at least every HealthCheckInterval + HealthCheckTimeout, so a shorter deadline could abandon a slow
        // query on a healthy server.
        var readDeadline = $"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.ReadDeadline)}";
        if (failover.ReadDeadline is not { } deadline)
        {
            return; // derived: HealthCheckInterval + HealthCheckTimeout
        }

        if (deadline <= TimeSpan.Zero)
        {
            failures.Add($"{readDeadline} must be positive when set.");
        }
        else if (options.HealthCheckInterval > TimeSpan.Zero && options.HealthCheckTimeout > TimeSpan.Zero
            && deadline < options.HealthCheckInterval + options.HealthCheckTimeout)
        {
            failures.Add($"{readDeadline} must be at least {prefix}{nameof(EfReplicaOptions.HealthCheckInterval)} plus {prefix}{nameof(EfReplicaOptions.HealthCheckTimeout)}: "
                + "a healthy server answers a probe at least that often, and a shorter deadline would abandon slow queries on healthy servers.");
        }
    }
}
