using System.Collections.ObjectModel;
using System.Globalization;
using System.Text.Json;

namespace EfReplicaInterceptor.Testing;

/// <summary>
/// The cluster as Patroni reports it: the document <c>GET /cluster</c> returned from one member's REST API, parsed.
/// </summary>
/// <remarks>
/// Patroni 3.0.2 reports a replica that streams as role <c>replica</c>, state <c>running</c> (the state <c>streaming</c>
/// comes with later releases); <c>lag</c> is the replica's distance in bytes from the leader's WAL position, measured on what it
/// <em>received</em>, not replayed; <c>tags</c> appears only for members that have tags.
/// </remarks>
public sealed class PatroniClusterState
{
    private PatroniClusterState(IReadOnlyList<PatroniMemberState> members, string json, Uri source)
    {
        Members = members;
        Json = json;
        Source = source;
    }

    /// <summary>Every member in the document, in Patroni's order (by name).</summary>
    public IReadOnlyList<PatroniMemberState> Members { get; }

    /// <summary>The member with role <c>leader</c> (or <c>standby_leader</c>), or null while there is none (during a failover).</summary>
    public PatroniMemberState? Leader => Members.FirstOrDefault(member => member.IsLeader);

    /// <summary>The document as Patroni sent it.</summary>
    public string Json { get; }

    /// <summary>The REST API URL that answered.</summary>
    public Uri Source { get; }

    /// <summary>The member named <paramref name="name"/>, or null when the document does not list it.</summary>
    /// <param name="name">The member's Patroni name.</param>
    /// <returns>Its state, or null.</returns>
    public PatroniMemberState? Member(string name) => Members.FirstOrDefault(member => member.Name == name);

    /// <summary>Parses a <c>GET /cluster</c> document.</summary>
    /// <param name="json">The response body.</param>
    /// <param name="source">The URL it came from.</param>
    /// <returns>The parsed state.</returns>
    /// <exception cref="JsonException">The body is not a cluster document.</exception>
    public static PatroniClusterState Parse(string json, Uri source)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(source);
        using var document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind != JsonValueKind.Object
            || !document.RootElement.TryGetProperty("members", out var members)
            || members.ValueKind != JsonValueKind.Array)
        {
            throw new JsonException("A Patroni /cluster document is an object with a \"members\" array.");
        }

        var parsed = new List<PatroniMemberState>();
        foreach (var member in members.EnumerateArray())
        {
            parsed.Add(PatroniMemberState.Parse(member));
        }

        return new PatroniClusterState(parsed.AsReadOnly(), json, source);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Join("; ", Members.Select(member => member.ToString()));
}

/// <summary>One member of a <see cref="PatroniClusterState"/>.</summary>
/// <param name="Name">Its Patroni name.</param>
/// <param name="Role"><c>leader</c>, <c>replica</c>, <c>sync_standby</c> or <c>standby_leader</c>.</param>
/// <param name="State">PostgreSQL's state as Patroni sees it: <c>running</c>, <c>streaming</c> (Patroni 3.0.4+), <c>starting</c>, <c>stopped</c>, <c>crashed</c>, …</param>
/// <param name="Host">The PostgreSQL host clients connect to.</param>
/// <param name="Port">The PostgreSQL port clients connect to.</param>
/// <param name="ApiUrl">The member's REST API URL (<c>…/patroni</c>).</param>
/// <param name="Timeline">The PostgreSQL timeline, when reported.</param>
/// <param name="LagBytes">A replica's lag in bytes of received WAL; null for the leader and when Patroni says <c>unknown</c>.</param>
/// <param name="Tags">The member's tags (values as JSON text: <c>true</c>, or the string's content); empty when it has none.</param>
public sealed record PatroniMemberState(
    string Name,
    string Role,
    string State,
    string? Host,
    int? Port,
    string? ApiUrl,
    int? Timeline,
    long? LagBytes,
    IReadOnlyDictionary<string, string> Tags)
{
    /// <summary>True for role <c>leader</c> or <c>standby_leader</c>.</summary>
    public bool IsLeader => Role is "leader" or "standby_leader" or "master" or "primary";

    /// <summary>True for role <c>replica</c> or <c>sync_standby</c>.</summary>
    public bool IsReplica => Role is "replica" or "sync_standby";

    /// <summary>True for state <c>running</c> or <c>streaming</c>.</summary>
    public bool IsRunning => State is "running" or "streaming";

    /// <summary>True when the member has the tag <c>noloadbalance: true</c>.</summary>
    public bool NoLoadBalance => Tags.TryGetValue("noloadbalance", out var value) && value == "true";

    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Name} {Role} {State} {Host}:{Port} tl {Timeline?.ToString(CultureInfo.InvariantCulture) ?? "?"} lag {LagBytes?.ToString(CultureInfo.InvariantCulture) ?? "-"}")
        + (Tags.Count == 0 ? string.Empty : " tags " + string.Join(',', Tags.Select(tag => $"{tag.Key}={tag.Value}")));

    internal static PatroniMemberState Parse(JsonElement member)
    {
        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        if (member.TryGetProperty("tags", out var tagElement) && tagElement.ValueKind == JsonValueKind.Object)
        {
            foreach (var tag in tagElement.EnumerateObject())
            {
                tags[tag.Name] = tag.Value.ValueKind == JsonValueKind.String ? tag.Value.GetString() ?? string.Empty : tag.Value.GetRawText();
            }
        }

        return new PatroniMemberState(
            String(member, "name") ?? throw new JsonException("A member of a Patroni /cluster document has no name."),
            String(member, "role") ?? "unknown",
            String(member, "state") ?? "unknown",
            String(member, "host"),
            Integer(member, "port") is { } port ? (int)port : null,
            String(member, "api_url"),
            Integer(member, "timeline") is { } timeline ? (int)timeline : null,
            Integer(member, "lag"),
            new ReadOnlyDictionary<string, string>(tags));
    }

    private static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static long? Integer(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number : null;
}
