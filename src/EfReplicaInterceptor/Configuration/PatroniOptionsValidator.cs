namespace EfReplicaInterceptor.Configuration;

/// <summary>The checks of <see cref="PatroniTopologyOptions"/> (section <c>Topology:Patroni</c>), for <see cref="EfReplicaOptionsValidator"/>.</summary>
internal static class PatroniOptionsValidator
{
    /// <summary>Problems with <see cref="EfReplicaOptions.Topology"/>'s Patroni settings, each naming its path, never its value.</summary>
    public static void Collect(EfReplicaOptions options, string prefix, List<string> failures)
    {
        var patroni = options.Topology?.Patroni;
        var endpoints = patroni?.Endpoints ?? [];
        var path = $"{prefix}{nameof(EfReplicaOptions.Topology)}:{nameof(TopologyOptions.Patroni)}";
        for (var i = 0; i < endpoints.Count; i++)
        {
            if (!IsPatroniEndpoint(endpoints[i]))
            {
                failures.Add($"{path}:{nameof(PatroniTopologyOptions.Endpoints)}:{i} must be an absolute http or https address of Patroni's REST API without credentials, for example http://127.0.0.1:8008; the value is not shown.");
            }
        }

        if (patroni?.ConnectionString is { } template)
        {
            EfReplicaOptionsValidator.CheckConnectionString(template, $"{path}:{nameof(PatroniTopologyOptions.ConnectionString)}", failures);
        }

        if (endpoints.Count == 0)
        {
            if (patroni?.ConnectionString is not null)
            {
                failures.Add($"{path}:{nameof(PatroniTopologyOptions.ConnectionString)} is set but {path}:{nameof(PatroniTopologyOptions.Endpoints)} lists no Patroni address.");
            }

            return;
        }

        if ((options.Replicas?.Count ?? 0) > 0)
        {
            failures.Add($"{prefix}{nameof(EfReplicaOptions.Replicas)} must be empty when {path}:{nameof(PatroniTopologyOptions.Endpoints)} is set: Patroni reports the replicas.");
        }
    }

    /// <summary>An absolute http(s) URL with a host and no user information (credentials do not belong in a logged address).</summary>
    internal static bool IsPatroniEndpoint(string? value)
        => Uri.TryCreate(value, UriKind.Absolute, out var uri)
           && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
           && uri.Host.Length > 0
           && uri.UserInfo.Length == 0;
}
