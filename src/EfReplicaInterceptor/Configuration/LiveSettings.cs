using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;

namespace EfReplicaInterceptor.Configuration;

/// <summary>
/// What one reading of a cluster's configuration found: the settings (null when they could not be read at all), every
/// problem (each naming its setting's path, never its value, as at start-up), and the settings that apply only at start-up
/// (every setting but the replica list), flattened by full path, to tell which of them changed.
/// </summary>
internal sealed record SettingsRead(EfReplicaOptions? Options, IReadOnlyList<string> Failures, IReadOnlyDictionary<string, string?> StartupSettings);

/// <summary>How a cluster configured from <c>IConfiguration</c> is read again when the configuration changes.</summary>
/// <param name="Changes">The configuration's change token (<c>reloadOnChange</c>).</param>
/// <param name="Read">Reads and checks the cluster's settings now, strictly, with the same messages as at start-up.</param>
internal sealed record LiveConfiguration(Func<IChangeToken?> Changes, Func<SettingsRead> Read);

/// <summary>Reads a cluster's settings again while the application runs, with the start-up checks.</summary>
internal static class LiveSettings
{
    /// <summary>The key of the replica list, the one setting (with its items' weights) that applies while running.</summary>
    public const string ReplicasKey = nameof(EfReplicaOptions.Replicas);

    /// <summary>
    /// Reads a single cluster's section (<c>services.AddEfReplica(configuration.GetSection("EfReplica"))</c>) as the
    /// start-up does: the strict binding's problems, then the validator's, each naming its path under <paramref name="path"/>.
    /// </summary>
    public static SettingsRead ReadSection(IConfiguration section, string path)
    {
        var failures = StrictConfiguration.Check<EfReplicaOptions>(section, StrictConfiguration.ClusterListKeys);
        var options = new EfReplicaOptions();
        StrictConfiguration.Bind(section, options, StrictConfiguration.ClusterListKeys);
        failures.AddRange(EfReplicaOptionsValidator.Collect(options, path));
        return new SettingsRead(options, failures, StartupSettings(section, StrictConfiguration.ClusterListKeys));
    }

    /// <summary>
    /// Every value under <paramref name="section"/> by its full path, except the replica list and the keys in
    /// <paramref name="skip"/> (other registrations' lists): the settings that need a restart to change.
    /// </summary>
    public static Dictionary<string, string?> StartupSettings(IConfiguration section, IReadOnlyCollection<string> skip)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            if (string.Equals(child.Key, ReplicasKey, StringComparison.OrdinalIgnoreCase) || skip.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var (key, value) in child.AsEnumerable())
            {
                if (value is not null)
                {
                    settings[key] = value;
                }
            }
        }

        return settings;
    }
}
