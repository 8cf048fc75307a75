using System.Data.Common;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EfReplicaInterceptor.Configuration;

/// <summary>
/// Validates <see cref="EfReplicaOptions"/> when the host starts. Every message names the setting by its full
/// configuration path (for example <c>EfReplica:Replicas:1:ConnectionString</c>) and never echoes a connection string.
/// </summary>
internal sealed class EfReplicaOptionsValidator(string sectionPath) : IValidateOptions<EfReplicaOptions>
{
    /// <summary>The most replicas one cluster may list (the router tracks tried replicas in a 64-bit mask).</summary>
    public const int MaxReplicas = 64;

    public ValidateOptionsResult Validate(string? name, EfReplicaOptions options)
    {
        var failures = Collect(options, sectionPath);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every problem with <paramref name="options"/>, each naming its setting under <paramref name="path"/>.</summary>
    public static List<string> Collect(EfReplicaOptions options, string path)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var prefix = string.IsNullOrEmpty(path) ? string.Empty : path + ":";

        CheckConnectionString(options.Primary, $"{prefix}{nameof(EfReplicaOptions.Primary)}", failures);

        var endpoints = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var replicas = options.Replicas ?? [];
        if (replicas.Count > MaxReplicas)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Replicas)} lists {replicas.Count} replicas; at most {MaxReplicas} are supported.");
        }

        for (var i = 0; i < replicas.Count; i++)
        {
            var replica = replicas[i];
            var replicaPath = $"{prefix}{nameof(EfReplicaOptions.Replicas)}:{i}";
            if (replica is null)
            {
                failures.Add($"{replicaPath} is empty: each replica needs a {nameof(ReplicaEndpointOptions.ConnectionString)}.");
                continue;
            }

            var builder = CheckConnectionString(replica.ConnectionString, $"{replicaPath}:{nameof(ReplicaEndpointOptions.ConnectionString)}", failures);
            if (builder is not null)
            {
                if (builder.Host?.Contains(',', StringComparison.Ordinal) == true)
                {
                    failures.Add($"{replicaPath}:{nameof(ReplicaEndpointOptions.ConnectionString)} lists several hosts; configure each replica as its own entry.");
                }

                var endpoint = EndpointKey(builder);
                if (endpoints.TryGetValue(endpoint, out var firstPath))
                {
                    failures.Add($"{replicaPath} is a duplicate replica: it points at the same server and database as {firstPath}.");
                }
                else
                {
                    endpoints[endpoint] = replicaPath;
                }
            }

            if (replica.Weight is < 1 or > 100)
            {
                failures.Add($"{replicaPath}:{nameof(ReplicaEndpointOptions.Weight)} must be between 1 and 100 (it was {replica.Weight}).");
            }

            var replicaName = ReplicaName(replica, builder, i);
            if (names.TryGetValue(replicaName, out var namedPath))
            {
                failures.Add($"{replicaPath}:{nameof(ReplicaEndpointOptions.Name)} '{replicaName}' is already used by {namedPath}; replica names must be unique.");
            }
            else
            {
                names[replicaName] = replicaPath;
            }
        }

        if (options.HealthCheckInterval <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.HealthCheckInterval)} must be positive (it was {options.HealthCheckInterval}).");
        }

        if (options.HealthCheckTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.HealthCheckTimeout)} must be positive (it was {options.HealthCheckTimeout}).");
        }

        if (options.MaxReplicaLagBytes is <= 0)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.MaxReplicaLagBytes)} must be positive when set (it was {options.MaxReplicaLagBytes}).");
        }

        if (options.ReadYourWritesWindow <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.ReadYourWritesWindow)} must be positive (it was {options.ReadYourWritesWindow}).");
        }

        if (options.ReadYourWritesMaxWait < TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.ReadYourWritesMaxWait)} must not be negative (it was {options.ReadYourWritesMaxWait}).");
        }

        if (!Enum.IsDefined(options.LoadBalancing))
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.LoadBalancing)} must be one of {string.Join(", ", Enum.GetNames<LoadBalancing>())}.");
        }

        if (!Enum.IsDefined(options.ReadYourWrites))
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.ReadYourWrites)} must be one of {string.Join(", ", Enum.GetNames<ReadYourWritesMode>())}.");
        }

        var failover = options.Failover ?? new FailoverOptions();
        if (failover.MaxRetries is < 0 or > 10)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.MaxRetries)} must be between 0 and 10 (it was {failover.MaxRetries}).");
        }

        if (failover.BaseDelay < TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.BaseDelay)} must not be negative (it was {failover.BaseDelay}).");
        }

        if (failover.MaxDelay <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Failover)}:{nameof(FailoverOptions.MaxDelay)} must be positive (it was {failover.MaxDelay}).");
        }

        if (options.MaxReplicaLag <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.MaxReplicaLag)} must be positive (it was {options.MaxReplicaLag}).");
        }

        var writeFunctions = options.WriteFunctions ?? [];
        for (var i = 0; i < writeFunctions.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(writeFunctions[i]))
            {
                failures.Add($"{prefix}{nameof(EfReplicaOptions.WriteFunctions)}:{i} is empty.");
            }
        }

        return failures;
    }

    /// <summary>The name a replica is reported under: its configured name, else <c>host:port</c>, else <c>replica-N</c>.</summary>
    public static string ReplicaName(ReplicaEndpointOptions replica, NpgsqlConnectionStringBuilder? builder, int index)
    {
        if (!string.IsNullOrWhiteSpace(replica.Name))
        {
            return replica.Name.Trim();
        }

        return builder?.Host is { Length: > 0 } host ? $"{host}:{builder.Port}" : $"replica-{index + 1}";
    }

    private static string EndpointKey(NpgsqlConnectionStringBuilder builder)
        => $"{builder.Host}|{builder.Port}|{builder.Database}";

    private static NpgsqlConnectionStringBuilder? CheckConnectionString(string? value, string settingPath, List<string> failures)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            failures.Add($"{settingPath} is required: set it to an Npgsql connection string (Host=...;Database=...;Username=...).");
            return null;
        }

        if (!TryParse(value, out var builder, out var problem))
        {
            failures.Add($"{settingPath} is not a valid Npgsql connection string: {problem}.");
            return null;
        }

        if (string.IsNullOrWhiteSpace(builder.Host))
        {
            failures.Add($"{settingPath} has no Host.");
            return null;
        }

        return builder;
    }

    /// <summary>
    /// Parses without ever putting a value into the problem text: Npgsql's own messages can quote the offending value,
    /// which could be a password. The problem names the keyword only.
    /// </summary>
    private static bool TryParse(string value, out NpgsqlConnectionStringBuilder builder, out string problem)
    {
        builder = new NpgsqlConnectionStringBuilder();
        DbConnectionStringBuilder generic;
        try
        {
            generic = new DbConnectionStringBuilder { ConnectionString = value };
        }
        catch (ArgumentException)
        {
            problem = "it is not a list of keyword=value pairs separated by ';'";
            return false;
        }

        foreach (string keyword in generic.Keys)
        {
            try
            {
                builder[keyword] = generic[keyword];
            }
            catch (ArgumentException)
            {
                problem = IsKnownKeyword(keyword)
                    ? $"the value of keyword '{keyword}' is invalid"
                    : $"keyword '{keyword}' is not supported";
                return false;
            }
            catch (FormatException)
            {
                problem = $"the value of keyword '{keyword}' is invalid";
                return false;
            }
            catch (OverflowException)
            {
                problem = $"the value of keyword '{keyword}' is out of range";
                return false;
            }
        }

        problem = string.Empty;
        return true;
    }

    private static bool IsKnownKeyword(string keyword)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder().ContainsKey(keyword);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
