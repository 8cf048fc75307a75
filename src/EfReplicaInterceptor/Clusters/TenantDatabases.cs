using EfReplicaInterceptor.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// Which tenant owns which database (server and database name): one database per tenant, since two tenants on the same
/// database would read and write each other's data. Configured tenants own theirs from the start, so that a tenant from the
/// catalogue cannot take one of them; a catalogue tenant's claim ends when its cluster closes. Thread-safe.
/// </summary>
internal sealed class TenantDatabases
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, string> _owners = new(StringComparer.Ordinal);
    private readonly ClusterSet _settings;
    private readonly ILogger _logger;

    public TenantDatabases(ClusterSet settings, ILogger logger)
    {
        _settings = settings;
        _logger = logger;
        foreach (var tenant in settings.Clusters.Values)
        {
            if (ClusterConfiguration.DatabaseKey(tenant.Options.Primary) is { } database)
            {
                _owners.TryAdd(database, tenant.Name);
            }
        }
    }

    /// <summary>Claims <paramref name="database"/> for <paramref name="tenantId"/>; throws when another tenant owns it.</summary>
    public void Claim(string tenantId, string? database)
    {
        if (database is null)
        {
            return; // unreadable: validation rejects the settings
        }

        lock (_gate)
        {
            if (_owners.TryGetValue(database, out var owner))
            {
                if (!string.Equals(owner, tenantId, StringComparison.OrdinalIgnoreCase))
                {
                    Log.TenantRejected(_logger, tenantId, $"its database is tenant '{owner}''s");
                    throw EfReplicaTenantException.SharedDatabase(tenantId, owner);
                }

                return;
            }

            _owners[database] = tenantId;
        }
    }

    /// <summary>Ends a catalogue tenant's claim (configured tenants keep theirs).</summary>
    public void Release(string tenantId, string? database)
    {
        if (database is null || _settings.Clusters.ContainsKey(tenantId))
        {
            return;
        }

        lock (_gate)
        {
            if (_owners.TryGetValue(database, out var owner) && string.Equals(owner, tenantId, StringComparison.OrdinalIgnoreCase))
            {
                _owners.Remove(database);
            }
        }
    }
}
