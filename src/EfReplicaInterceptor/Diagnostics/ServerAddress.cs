using System.Collections.Concurrent;
using System.Globalization;

namespace EfReplicaInterceptor.Diagnostics;

/// <summary>
/// Where a command ran: the host and port of its connection (nothing else of the connection string). Taken from an open
/// connection with two field reads; its <c>host:port</c> label is built once per address and only when telemetry asks.
/// </summary>
internal readonly record struct ServerAddress(string? Host, int Port)
{
    /// <summary>Labels are kept for this many addresses; past that (a cluster does not have so many) they are built each time.</summary>
    private const int MaxCachedLabels = 256;

    private static readonly ConcurrentDictionary<(string Host, int Port), string> Labels = new();

    /// <summary>No address known (the command never reached a connection).</summary>
    public static ServerAddress None => default;

    /// <summary>The address of <paramref name="connection"/>: the server it is connected to when open, else the configured host and port.</summary>
    public static ServerAddress Of(System.Data.Common.DbConnection? connection)
        => connection is Npgsql.NpgsqlConnection npgsql ? new(npgsql.Host, npgsql.Port) : None;

    /// <summary><c>host:port</c> (<c>[address]:port</c> for IPv6), or <c>unknown</c>.</summary>
    public string Label()
    {
        if (Host is null)
        {
            return "unknown";
        }

        if (Labels.TryGetValue((Host, Port), out var label))
        {
            return label;
        }

        label = Host.Contains(':', StringComparison.Ordinal)
            ? string.Create(CultureInfo.InvariantCulture, $"[{Host}]:{Port}") // an IPv6 address
            : string.Create(CultureInfo.InvariantCulture, $"{Host}:{Port}");
        if (Labels.Count < MaxCachedLabels)
        {
            Labels.TryAdd((Host, Port), label);
        }

        return label;
    }
}
