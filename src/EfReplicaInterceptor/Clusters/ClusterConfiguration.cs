using EfReplicaInterceptor.Configuration;
using Microsoft.Extensions.Configuration;
using Npgsql;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// Reads the clusters listed under one key of a section (<c>Clusters:&lt;name&gt;</c> or <c>Tenants:&lt;id&gt;</c>). Each
/// cluster's settings are the section's own settings (the shared defaults) overridden by the cluster's. Its servers,
/// <see cref="EfReplicaOptions.Primary"/> and <see cref="EfReplicaOptions.Replicas"/>, are never inherited: a cluster that
/// forgot its primary must fail validation, not quietly reach the servers named at the top of the section.
/// <see cref="EfReplicaOptions.WriteFunctions"/> add up (a function that writes does so in every cluster).
/// </summary>
internal static class ClusterConfiguration
{
    public const string ClustersKey = "Clusters";
    public const string TenantsKey = "Tenants";
    public const string TenancyKey = "Tenancy";

    /// <summary>The probe primary used to validate shared defaults alone (they never carry a primary of their own).</summary>
    private const string ProbePrimary = "Host=localhost";

    public static string PathOf(IConfiguration configuration) => configuration is IConfigurationSection section ? section.Path : string.Empty;

    public static string Child(string path, string key) => path.Length == 0 ? key : ConfigurationPath.Combine(path, key);

    /// <summary>The shared defaults: every setting of <paramref name="root"/> except its servers. A new instance each call.</summary>
    public static EfReplicaOptions SharedDefaults(IConfiguration root)
    {
        var options = new EfReplicaOptions();
        StrictConfiguration.Bind(root, options, StrictConfiguration.ClusterListKeys);
        options.Primary = null;
        options.Replicas = [];
        options.Topology = new TopologyOptions(); // a cluster's servers are its own, Patroni's addresses too
        options.WriteFunctions = [.. options.WriteFunctions ?? []];
        return options;
    }

    /// <summary>The effective settings of one cluster: the shared defaults, overridden by <paramref name="cluster"/>'s own.</summary>
    public static EfReplicaOptions ForCluster(IConfiguration root, IConfiguration cluster)
    {
        var options = SharedDefaults(root);
        var sharedWriteFunctions = options.WriteFunctions;
        options.WriteFunctions = [];
        StrictConfiguration.Bind(cluster, options);
        options.WriteFunctions = [.. sharedWriteFunctions.Concat(options.WriteFunctions ?? []).Distinct(StringComparer.OrdinalIgnoreCase)];
        return options;
    }

    /// <summary>Problems with the shared defaults, each named by its path in <paramref name="root"/> (reported once, not per cluster).</summary>
    public static List<string> ValidateShared(IConfiguration root)
    {
        var probe = SharedDefaults(root);
        probe.Primary = ProbePrimary;
        var failures = StrictConfiguration.Check<EfReplicaOptions>(root, StrictConfiguration.ClusterListKeys);
        failures.AddRange(EfReplicaOptionsValidator.Collect(probe, PathOf(root)));
        return failures;
    }

    /// <summary>
    /// Problems with one cluster, each named by the path of the setting that causes it: the cluster's own settings under its
    /// path, and problems that only the combination shows (an inherited value with an own one) under the cluster's path too.
    /// Problems of inherited values alone are left to <paramref name="sharedFailures"/>.
    /// </summary>
    public static List<string> ValidateCluster(IConfiguration root, IConfigurationSection cluster, EfReplicaOptions effective, IReadOnlyList<string> sharedFailures)
    {
        var own = new EfReplicaOptions();
        StrictConfiguration.Bind(cluster, own);
        var failures = StrictConfiguration.Check<EfReplicaOptions>(cluster);
        failures.AddRange(EfReplicaOptionsValidator.Collect(own, cluster.Path));

        var reported = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var failure in failures)
        {
            reported.Add(SettingOf(failure, cluster.Path));
        }

        foreach (var failure in sharedFailures)
        {
            reported.Add(SettingOf(failure, PathOf(root)));
        }

        foreach (var failure in EfReplicaOptionsValidator.Collect(effective, cluster.Path))
        {
            if (!failures.Contains(failure) && reported.Add(SettingOf(failure, cluster.Path)))
            {
                failures.Add(failure);
            }
        }

        return failures;
    }

    /// <summary>
    /// Reads the named cluster <paramref name="name"/> of <paramref name="root"/> again (its configuration changed), with the
    /// start-up checks: the shared defaults' problems and the cluster's own, each naming its path.
    /// </summary>
    public static SettingsRead ReadCluster(IConfiguration root, string name)
    {
        var cluster = root.GetSection(ClustersKey).GetSection(name);
        var startup = LiveSettings.StartupSettings(root, StrictConfiguration.ClusterListKeys);
        foreach (var (key, value) in LiveSettings.StartupSettings(cluster, []))
        {
            startup[key] = value;
        }

        if (!cluster.Exists())
        {
            return new SettingsRead(null, [$"{cluster.Path} is no longer listed: a named cluster cannot be removed while the application runs."], startup);
        }

        var shared = ValidateShared(root);
        var options = ForCluster(root, cluster);
        var failures = new List<string>(shared);
        failures.AddRange(ValidateCluster(root, cluster, options, shared));
        return new SettingsRead(options, failures, startup);
    }

    /// <summary>
    /// Identifies the server and database a connection string points at (<c>host|port|database</c>), or
    /// <see langword="null"/> when it cannot be read (validation reports that).
    /// </summary>
    public static string? DatabaseKey(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            return null;
        }

        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            return string.IsNullOrWhiteSpace(builder.Host)
                ? null
                : string.Join('|', builder.Host.Trim(), builder.Port, builder.Database ?? builder.Username ?? string.Empty).ToUpperInvariant();
        }
        catch (ArgumentException)
        {
            return null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>The first segment after <paramref name="path"/> in a validation message (the setting it is about).</summary>
    private static string SettingOf(string failure, string path)
    {
        var prefix = path.Length == 0 ? string.Empty : path + ":";
        if (!failure.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return failure;
        }

        var rest = failure.AsSpan(prefix.Length);
        var end = rest.IndexOfAny(':', ' ');
        return (end < 0 ? rest : rest[..end]).ToString();
    }
}
