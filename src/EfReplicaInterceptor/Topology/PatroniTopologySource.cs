using System.Globalization;
using System.Text.Json;
using EfReplicaInterceptor.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The cluster's members as Patroni's REST API reports them (<c>GET /cluster</c>, on each listed address in turn, the one
/// that answered last first). The leader is the primary; a member in a replica's role takes reads while its state is
/// <c>running</c> or <c>streaming</c> and it is not tagged <c>noloadbalance</c>. The running leader is watched too (see
/// <see cref="TopologySnapshot.Watched"/>): the library's own probe says whether it answers as the primary, as Patroni keeps
/// reporting a killed leader until its key expires. Polled every interval, and as soon as the
/// read path asks (<see cref="RequestRefresh"/>, after a failover error), at most once per quarter interval. One poll never
/// takes longer than the probe timeout in all: each address gets the time left shared by the addresses left, so a hung one
/// cannot keep the others from being asked. When no address answers, the last known topology stays. Patroni's lag is
/// carried as a hint only.
/// </summary>
internal sealed class PatroniTopologySource : ITopologySource
{
    private readonly string _cluster;
    private readonly Uri[] _endpoints;
    private readonly string _template;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _polling = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _wakeup = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Action<TopologySnapshot>? _publish;
    private Task _loop = Task.CompletedTask;
    private int _preferred;
    private string? _failure;
    private long _lastPollStarted;
    private int _disposed;

    /// <param name="cluster">The cluster's name, for logs.</param>
    /// <param name="endpoints">Patroni's REST API addresses (validated at start-up).</param>
    /// <param name="templateConnectionString">Credentials, database and settings for the members; hosts and ports are Patroni's.</param>
    /// <param name="interval">How often to poll (<c>HealthCheckInterval</c>).</param>
    /// <param name="timeout">The longest one poll may take, all addresses together (<c>HealthCheckTimeout</c>).</param>
    /// <param name="timeProvider">The clock of the polls and their deadlines.</param>
    /// <param name="loggerFactory">Where events go.</param>
    /// <param name="handler">The HTTP handler (tests pass one that answers with recorded documents); null: a new one, owned.</param>
    public PatroniTopologySource(
        string cluster, IEnumerable<string> endpoints, string templateConnectionString, TimeSpan interval, TimeSpan timeout,
        TimeProvider timeProvider, ILoggerFactory loggerFactory, HttpMessageHandler? handler = null)
    {
        _cluster = cluster;
        _endpoints = [.. endpoints.Select(static endpoint => new Uri(endpoint.EndsWith('/') ? endpoint : endpoint + "/", UriKind.Absolute))];
        _template = templateConnectionString;
        _interval = interval;
        _timeout = timeout;
        _timeProvider = timeProvider;
        _logger = loggerFactory.CreateLogger(Log.TopologyCategory);
        _http = handler is null
            ? new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }, disposeHandler: true)
            : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = Timeout.InfiniteTimeSpan; // each request has the poll's own deadline
    }

    public string Kind => "Patroni";

    /// <summary>None: the members are known after the first poll (<see cref="RefreshAsync"/>, which the host runs at start).</summary>
    public TopologySnapshot? Initial => null;

    /// <summary>Polls since the start (tests).</summary>
    internal long Polls => Interlocked.Read(ref _polls);

    private long _polls;

    public void Start(Action<TopologySnapshot> publish)
    {
        if (Interlocked.CompareExchange(ref _publish, publish, null) is null)
        {
            _loop = Task.Run(LoopAsync);
        }
    }

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        await PollAndPublishAsync(linked.Token).ConfigureAwait(false);
    }

    public void RequestRefresh() => Volatile.Read(ref _wakeup).TrySetResult();

    private async Task LoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                var wakeup = Volatile.Read(ref _wakeup).Task;
                await Task.WhenAny(wakeup, Task.Delay(_interval, _timeProvider, token)).ConfigureAwait(false);
                token.ThrowIfCancellationRequested();
                if (wakeup.IsCompleted)
                {
                    // Asked for: not more often than every quarter interval, so a burst of failed reads costs a few polls.
                    var spacing = _interval / 4 - _timeProvider.GetElapsedTime(Interlocked.Read(ref _lastPollStarted));
                    if (spacing > TimeSpan.Zero)
                    {
                        await Task.Delay(spacing, _timeProvider, token).ConfigureAwait(false);
                    }
                }

                Interlocked.Exchange(ref _wakeup, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
                await PollAndPublishAsync(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                // Never expected (a failed poll is reported below); the loop goes on.
                Log.TopologySourceFailed(_logger, _cluster, "Patroni", exception.GetType().Name);
            }
        }
    }

    /// <summary>One poll; its snapshot is published, or the failure reported (once per streak of failures).</summary>
    private async Task PollAndPublishAsync(CancellationToken cancellationToken)
    {
        await _polling.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Interlocked.Exchange(ref _lastPollStarted, _timeProvider.GetTimestamp());
            Interlocked.Increment(ref _polls);
            var (snapshot, problem) = await PollAsync(cancellationToken).ConfigureAwait(false);
            if (snapshot is null)
            {
                if (_failure is null)
                {
                    Log.TopologySourceFailed(_logger, _cluster, "Patroni", problem!);
                }

                _failure = problem;
                return;
            }

            if (_failure is not null)
            {
                Log.TopologySourceRecovered(_logger, _cluster, snapshot.Source);
                _failure = null;
            }

            _publish?.Invoke(snapshot);
        }
        finally
        {
            _polling.Release();
        }
    }

    /// <summary>
    /// Asks each address in turn (the last that answered first) until one answers with a document that can be read; the
    /// whole poll ends within the timeout. Returns the snapshot, or why there is none.
    /// </summary>
    internal async Task<(TopologySnapshot? Snapshot, string? Problem)> PollAsync(CancellationToken cancellationToken)
    {
        var started = _timeProvider.GetTimestamp();
        var problems = new List<string>(_endpoints.Length);
        var first = Volatile.Read(ref _preferred);
        for (var attempt = 0; attempt < _endpoints.Length; attempt++)
        {
            var index = (first + attempt) % _endpoints.Length;
            var left = _timeout - _timeProvider.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                problems.Add($"{Label(_endpoints[index])}: not asked, the poll's time was used up");
                continue;
            }

            var share = left / (_endpoints.Length - attempt);
            using var deadline = new CancellationTokenSource(share, _timeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            try
            {
                using var response = await _http.GetAsync(new Uri(_endpoints[index], "cluster"), HttpCompletionOption.ResponseContentRead, linked.Token)
                    .WaitAsync(linked.Token).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    problems.Add($"{Label(_endpoints[index])}: HTTP {((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)}");
                    continue;
                }

                var body = await response.Content.ReadAsStringAsync(linked.Token).ConfigureAwait(false);
                var snapshot = Parse(body, _template, $"Patroni at {Label(_endpoints[index])}");
                Volatile.Write(ref _preferred, index);
                return (snapshot, null);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (OperationCanceledException)
            {
                problems.Add($"{Label(_endpoints[index])}: no answer within {share.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s");
            }
            catch (TimeoutException)
            {
                problems.Add($"{Label(_endpoints[index])}: no answer within {share.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s");
            }
            catch (HttpRequestException exception)
            {
                problems.Add($"{Label(_endpoints[index])}: {exception.HttpRequestError}");
            }
            catch (Exception exception) when (exception is JsonException or FormatException or InvalidOperationException or KeyNotFoundException or ArgumentException)
            {
                problems.Add($"{Label(_endpoints[index])}: the answer is not Patroni's cluster document ({exception.GetType().Name})");
            }
        }

        return (null, string.Join("; ", problems));
    }

    /// <summary>An address as logs show it: scheme, host and port only.</summary>
    private static string Label(Uri endpoint) => endpoint.GetLeftPart(UriPartial.Authority);

    /// <summary>
    /// Reads Patroni's <c>/cluster</c> document: <c>{"members":[{"name","role","state","host","port","tags":{…},"lag"},…]}</c>.
    /// Each member's connection string is <paramref name="template"/> with the member's host and port (and no target session
    /// attributes); a member without a host or port is left out.
    /// </summary>
    /// <exception cref="JsonException">Not JSON.</exception>
    /// <exception cref="FormatException">JSON without a <c>members</c> list.</exception>
    internal static TopologySnapshot Parse(string json, string template, string source)
    {
        using var document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind != JsonValueKind.Object
            || !document.RootElement.TryGetProperty("members", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException("The document has no members list.");
        }

        var members = new List<TopologyMember>();
        foreach (var member in list.EnumerateArray())
        {
            if (member.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            var name = Text(member, "name");
            var host = Text(member, "host");
            var port = Port(member);
            if (string.IsNullOrEmpty(name) || string.IsNullOrEmpty(host) || port is null)
            {
                continue;
            }

            var role = IsLeader(Text(member, "role")) ? MemberRole.Primary : MemberRole.Replica;
            var state = Text(member, "state") ?? "unknown";
            var readable = role == MemberRole.Replica && state is "running" or "streaming" && !Tagged(member, "noloadbalance");
            members.Add(new TopologyMember(name, ConnectionStringFor(template, host, port.Value), role, readable, Weight: 1, state, LagBytes(member)));
        }

        return new TopologySnapshot(members, source);
    }

    /// <summary>Patroni's leader roles: <c>leader</c> (<c>master</c>/<c>primary</c> in other versions), and <c>standby_leader</c> in a standby cluster.</summary>
    private static bool IsLeader(string? role) => role is "leader" or "master" or "primary" or "standby_leader";

    /// <summary><paramref name="template"/> pointed at one member: its host and port, one host only, any role.</summary>
    internal static string ConnectionStringFor(string template, string host, int port)
    {
        var builder = new NpgsqlConnectionStringBuilder(template) { Host = host, Port = port };
        builder.Remove("Target Session Attributes");
        builder.Remove("Load Balance Hosts");
        return builder.ConnectionString;
    }

    private static string? Text(JsonElement member, string property)
        => member.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static int? Port(JsonElement member)
    {
        if (!member.TryGetProperty("port", out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.Number when value.TryGetInt32(out var port) && port is > 0 and < 65536 => port,
            JsonValueKind.String when int.TryParse(value.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536 => port,
            _ => null,
        };
    }

    private static bool Tagged(JsonElement member, string tag)
        => member.TryGetProperty("tags", out var tags) && tags.ValueKind == JsonValueKind.Object && tags.TryGetProperty(tag, out var value)
           && (value.ValueKind == JsonValueKind.True || (value.ValueKind == JsonValueKind.String && string.Equals(value.GetString(), "true", StringComparison.OrdinalIgnoreCase)));

    /// <summary>Patroni's <c>lag</c> in bytes, when it is a number (it may be <c>"unknown"</c>).</summary>
    private static long? LagBytes(JsonElement member)
        => member.TryGetProperty("lag", out var lag) && lag.ValueKind == JsonValueKind.Number && lag.TryGetInt64(out var bytes) ? bytes : null;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _polling.WaitAsync().ConfigureAwait(false);
        _http.Dispose();
        _polling.Dispose();
        _stopping.Dispose();
    }
}
