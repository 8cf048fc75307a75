using System.Globalization;
using EfReplicaInterceptor.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace EfReplicaInterceptor.Clusters;

/// <summary>One cluster read from configuration: its name (the configuration key), the path it was read from, its settings.</summary>
internal sealed record ClusterDefinition(string Name, string Path, EfReplicaOptions Options);

/// <summary>
/// The clusters listed under one key of a section (<c>EfReplica:Clusters</c> or <c>EfReplica:Tenants</c>), with every
/// problem found while reading them. An options type of its own (named after the list's path) so that it is validated when
/// the host starts, and apart from the single-cluster <see cref="EfReplicaOptions"/>.
/// </summary>
internal sealed class ClusterSet
{
    /// <summary>The path of the section holding the shared defaults, e.g. <c>EfReplica</c>.</summary>
    public string SectionPath { get; private set; } = string.Empty;

    /// <summary>The path of the list, e.g. <c>EfReplica:Clusters</c>.</summary>
    public string ListPath { get; private set; } = string.Empty;

    public Dictionary<string, ClusterDefinition> Clusters { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>A fresh copy of the shared defaults (for clusters provided at run time).</summary>
    public Func<EfReplicaOptions> SharedDefaults { get; private set; } = static () => new EfReplicaOptions();

    /// <summary>How tenant clusters are kept (tenant lists only).</summary>
    public EfReplicaTenantOptions Tenancy { get; } = new();

    public List<string> Failures { get; } = [];

    /// <summary>Reads <c>Clusters</c> of <paramref name="section"/>; at least one cluster is required.</summary>
    public void LoadClusters(IConfiguration section)
    {
        Load(section, ClusterConfiguration.ClustersKey);
        if (Clusters.Count == 0)
        {
            Failures.Add($"{ListPath} names no cluster: add at least one, for example {ListPath}:orders:Primary.");
        }
    }

    /// <summary>Reads <c>Tenants</c> (may be empty when a catalogue provides every tenant) and <c>Tenancy</c> of <paramref name="section"/>.</summary>
    public void LoadTenants(IConfiguration section, Action<EfReplicaTenantOptions>? configure)
    {
        Load(section, ClusterConfiguration.TenantsKey);
        var tenancy = section.GetSection(ClusterConfiguration.TenancyKey);
        Failures.AddRange(StrictConfiguration.Check<EfReplicaTenantOptions>(tenancy));
        StrictConfiguration.Bind(tenancy, Tenancy);
        configure?.Invoke(Tenancy);
        if (Tenancy.IdleTimeout <= TimeSpan.Zero)
        {
            Failures.Add(string.Create(CultureInfo.InvariantCulture,
                $"{ClusterConfiguration.Child(SectionPath, ClusterConfiguration.TenancyKey)}:{nameof(EfReplicaTenantOptions.IdleTimeout)} must be positive."));
        }

        // One database per tenant: two tenants on the same database would read and write each other's data.
        var owners = new Dictionary<string, ClusterDefinition>(StringComparer.Ordinal);
        foreach (var tenant in Clusters.Values)
        {
            if (ClusterConfiguration.DatabaseKey(tenant.Options.Primary) is not { } database)
            {
                continue;
            }

            if (owners.TryGetValue(database, out var owner))
            {
                Failures.Add($"{tenant.Path}:{nameof(EfReplicaOptions.Primary)} points at the same server and database as {owner.Path}:{nameof(EfReplicaOptions.Primary)}; tenants must not share a database.");
            }
            else
            {
                owners[database] = tenant;
            }
        }
    }

    private void Load(IConfiguration section, string listKey)
    {
        SectionPath = ClusterConfiguration.PathOf(section);
        ListPath = ClusterConfiguration.Child(SectionPath, listKey);
        SharedDefaults = () => ClusterConfiguration.SharedDefaults(section);
        var sharedFailures = ClusterConfiguration.ValidateShared(section);
        Failures.AddRange(sharedFailures);

        foreach (var cluster in section.GetSection(listKey).GetChildren())
        {
            var options = ClusterConfiguration.ForCluster(section, cluster);
            Failures.AddRange(ClusterConfiguration.ValidateCluster(section, cluster, options, sharedFailures));
            Clusters[cluster.Key] = new ClusterDefinition(cluster.Key, cluster.Path, options);
        }
    }
}

/// <summary>Fails start-up with every problem found while reading a <see cref="ClusterSet"/>, each naming its setting's path.</summary>
internal sealed class ClusterSetValidator : IValidateOptions<ClusterSet>
{
    public ValidateOptionsResult Validate(string? name, ClusterSet options)
        => options.Failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(options.Failures);
}
