using System.Data.Common;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EfReplicaInterceptor.Configuration;

/// <summary>
/// Validates <see cref="EfReplicaOptions"/> when the host starts. Every message names the setting by its full
/// configuration path (for example <c>EfReplica:Replicas:1:ConnectionString</c>) and never echoes a connection string.
/// When the options were bound from <paramref name="configuration"/>, its keys are checked too (unknown keys, values that
/// cannot be read), see <see cref="StrictConfiguration"/>.
/// </summary>
internal sealed class EfReplicaOptionsValidator(string sectionPath, IConfiguration? configuration = null) : IValidateOptions<EfReplicaOptions>
{
    /// <summary>The most replicas one cluster may list (the router tracks tried replicas in a 64-bit mask).</summary>
    public const int MaxReplicas = 64;

    public ValidateOptionsResult Validate(string? name, EfReplicaOptions options)
    {
        var failures = configuration is null ? [] : StrictConfiguration.Check<EfReplicaOptions>(configuration, StrictConfiguration.ClusterListKeys);
        failures.AddRange(Collect(options, sectionPath));
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every problem with <paramref name="options"/>, each naming its setting under <paramref name="path"/>.</summary>
    public static List<string> Collect(EfReplicaOptions options, string path)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var prefix = string.IsNullOrEmpty(path) ? string.Empty : path + ":";

        var primaryPath = $"{prefix}{nameof(EfReplicaOptions.Primary)}";
        var primary = CheckConnectionString(options.Primary, primaryPath, failures);
        var primaryKey = primary is null ? null : ServerKey(primary);

        var endpoints = new Dictionary<string, string>(StringComparer.Ordinal);
        var primaryListed = new List<string>(); // replicas that are the primary's own server
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

                var endpoint = ServerKey(builder);
                if (endpoints.TryGetValue(endpoint, out var firstPath))
                {
                    failures.Add($"{replicaPath} is a duplicate replica: it points at the same server and database as {firstPath}.");
                }
                else
                {
                    endpoints[endpoint] = replicaPath;
                    if (endpoint == primaryKey)
                    {
                        primaryListed.Add(replicaPath);
                    }
                }
            }

            if (replica.Weight is < 1 or > 100)
            {
                failures.Add($"{replicaPath}:{nameof(ReplicaEndpointOptions.Weight)} must be between 1 and 100.");
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

        // Any node may be listed as a replica, the primary included: a high-availability cluster lists every node, and after a
        // switchover the listed primary is a standby. What stays wrong is a list of replicas that is only the primary (a copy
        // of the primary's string where a standby's was meant): reads would never leave the primary, silently.
        if (primaryListed.Count > 0 && primaryListed.Count == endpoints.Count)
        {
            foreach (var listedPath in primaryListed)
            {
                failures.Add($"{listedPath}:{nameof(ReplicaEndpointOptions.ConnectionString)} points at the same server and database as {primaryPath}, and no other replica is listed: reads would never leave the primary. List the hot standbys (a high-availability cluster may list every node, the primary among them).");
            }
        }

        if (options.HealthCheckInterval <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.HealthCheckInterval)} must be positive.");
        }

        if (options.HealthCheckTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.HealthCheckTimeout)} must be positive.");
        }

        if (options.MaxReplicaLagBytes is <= 0)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.MaxReplicaLagBytes)} must be positive when set.");
        }

        if (options.ReadYourWritesWindow <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.ReadYourWritesWindow)} must be positive.");
        }

        if (options.ReadYourWritesMaxWait < TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.ReadYourWritesMaxWait)} must not be negative.");
        }

        if (!Enum.IsDefined(options.LoadBalancing))
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.LoadBalancing)} must be one of {string.Join(", ", Enum.GetNames<LoadBalancing>())}.");
        }

        if (!Enum.IsDefined(options.ReadYourWrites))
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.ReadYourWrites)} must be one of {string.Join(", ", Enum.GetNames<ReadYourWritesMode>())}.");
        }

        FailoverOptionsValidator.Collect(options, prefix, failures);

        if (options.MaxReplicaLag <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.MaxReplicaLag)} must be positive.");
        }

        var writeFunctions = options.WriteFunctions ?? [];
        for (var i = 0; i < writeFunctions.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(writeFunctions[i]))
            {
                failures.Add($"{prefix}{nameof(EfReplicaOptions.WriteFunctions)}:{i} is empty.");
            }
        }

        PatroniOptionsValidator.Collect(options, prefix, failures);
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

    /// <summary>
    /// Identifies the server(s) and database a connection string points at: its hosts (compared ignoring case, each with its
    /// own port or the connection string's, 5432 by default), in any order, and the database (Npgsql's default, the user
    /// name, when none is given). Two connection strings with the same key reach the same database.
    /// </summary>
    internal static string ServerKey(NpgsqlConnectionStringBuilder builder)
    {
        var hosts = (builder.Host ?? string.Empty)
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(host => HostAndPort(host, builder.Port))
            .Order(StringComparer.Ordinal);
        return $"{string.Join(',', hosts)}/{builder.Database ?? builder.Username ?? string.Empty}";
    }

    private static string HostAndPort(string host, int defaultPort)
    {
        var port = defaultPort;
        var name = host;
        var colon = host.LastIndexOf(':');
        var bracket = host.LastIndexOf(']');
        var ipv6WithoutBrackets = host.IndexOf(':', StringComparison.Ordinal) != colon && bracket < 0;
        if (colon > bracket && !ipv6WithoutBrackets && int.TryParse(host.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var explicitPort))
        {
            name = host[..colon];
            port = explicitPort;
        }

        return $"{name.Trim('[', ']').ToUpperInvariant()}:{port}";
    }

    internal static NpgsqlConnectionStringBuilder? CheckConnectionString(string? value, string settingPath, List<string> failures)
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
                    : UnknownKeyword(keyword, value);
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

    /// <summary>
    /// Names an unknown keyword only when it is plainly a misspelt keyword. A password with an unquoted <c>;</c> turns its
    /// tail into a "keyword" (<c>Password=ab;cd=ef</c> makes <c>cd</c> one), so a keyword that follows a secret, or that does
    /// not look like a keyword, is not shown.
    /// </summary>
    private static string UnknownKeyword(string keyword, string connectionString)
    {
        const string hidden = "a keyword is not supported (not shown: it may be the tail of a password containing ';'; quote such a value, for example Password=\"a;b\")";
        if (keyword.Length > 40 || !keyword.All(static c => char.IsAsciiLetter(c) || c == ' ') || FollowsSecret(keyword, connectionString))
        {
            return hidden;
        }

        var compact = keyword.Replace(" ", string.Empty, StringComparison.Ordinal).ToUpperInvariant();
        var closest = Keywords.Value
            .MinBy(known => StrictConfiguration.Distance(known.Replace(" ", string.Empty, StringComparison.Ordinal).ToUpperInvariant(), compact));
        return closest is not null && StrictConfiguration.Distance(closest.Replace(" ", string.Empty, StringComparison.Ordinal).ToUpperInvariant(), compact) <= 2
            ? $"keyword '{keyword}' is not supported (did you mean '{closest}'?)"
            : hidden;
    }

    /// <summary>The keywords Npgsql's connection string builder knows (the display names of its properties).</summary>
    private static readonly Lazy<string[]> Keywords = new(static () =>
    [
        .. typeof(NpgsqlConnectionStringBuilder).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Select(static property => property.GetCustomAttributes(typeof(System.ComponentModel.DisplayNameAttribute), inherit: true)
                .OfType<System.ComponentModel.DisplayNameAttribute>().FirstOrDefault()?.DisplayName)
            .OfType<string>()
            .Distinct(StringComparer.OrdinalIgnoreCase),
    ]);

    /// <summary>Whether the nearest <c>keyword=value</c> pair before <paramref name="keyword"/> holds a secret (or cannot be told).</summary>
    private static bool FollowsSecret(string keyword, string connectionString)
    {
        var at = connectionString.IndexOf(keyword, StringComparison.OrdinalIgnoreCase);
        if (at < 0)
        {
            return true;
        }

        var before = connectionString[..at].Split(';');
        for (var i = before.Length - 2; i >= 0; i--)
        {
            var equals = before[i].IndexOf('=', StringComparison.Ordinal);
            if (equals >= 0)
            {
                var previous = before[i][..equals].Replace(" ", string.Empty, StringComparison.Ordinal);
                return previous.Contains("pass", StringComparison.OrdinalIgnoreCase)
                    || previous.Contains("key", StringComparison.OrdinalIgnoreCase)
                    || previous.Contains("secret", StringComparison.OrdinalIgnoreCase)
                    || previous.Contains("token", StringComparison.OrdinalIgnoreCase)
                    || previous.Contains('\'', StringComparison.Ordinal)
                    || previous.Contains('"', StringComparison.Ordinal);
            }
        }

        return false;
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
