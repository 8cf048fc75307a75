using System.Collections.Concurrent;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The system identifiers of every database cluster this process has reached (each cluster's primary reports its own; its
/// standbys share it). A consistency token may speak for several clusters of one application: the part of a token that
/// names another cluster of this process is carried along, not rejected as foreign. Only grows, by one entry per database
/// cluster ever reached.
/// </summary>
internal static class KnownSystems
{
    private static readonly ConcurrentDictionary<ulong, byte> Systems = new();

    public static void Add(ulong systemIdentifier)
    {
        if (systemIdentifier != 0)
        {
            Systems.TryAdd(systemIdentifier, 0);
        }
    }

    public static bool Contains(ulong systemIdentifier) => Systems.ContainsKey(systemIdentifier);
}
