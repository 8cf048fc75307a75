using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace EfReplicaInterceptor;

/// <summary>
/// A fixed-size, lock-free cache of classifications keyed by string instance (reference identity, never content), two-way set
/// associative: a lookup is one identity hash and at most two reference comparisons. EF Core keeps the command text of a cached
/// query as one string instance, so the texts an application repeats stay in the cache.
/// </summary>
/// <remarks>
/// Each entry is an immutable object published with a single reference write, so a reader sees a whole entry or none, and a hit
/// is only ever the classification of that very instance. Memory is bounded: at most <see cref="Capacity"/> texts are held, none
/// longer than <see cref="MaxCachedLength"/> characters (longer texts are classified each time), so at most 16 MiB of text in the
/// worst case and a few hundred KiB for typical queries.
/// </remarks>
internal sealed class ClassificationCache
{
    /// <summary>Number of entries (a power of two).</summary>
    internal const int Capacity = 1024;

    /// <summary>Texts longer than this are not cached.</summary>
    internal const int MaxCachedLength = 8 * 1024;

    private const int SetMask = (Capacity / 2) - 1;

    private readonly Entry?[] _entries = new Entry?[Capacity];

    /// <summary>Finds the classification stored for this very string instance.</summary>
    public bool TryGet(string text, out SqlClassification classification)
    {
        var index = (RuntimeHelpers.GetHashCode(text) & SetMask) * 2;
        var entries = _entries;
        var entry = Volatile.Read(ref entries[index]);
        if (entry is not null && ReferenceEquals(entry.Text, text))
        {
            classification = entry.Classification;
            return true;
        }

        entry = Volatile.Read(ref entries[index + 1]);
        if (entry is not null && ReferenceEquals(entry.Text, text))
        {
            classification = entry.Classification;
            return true;
        }

        classification = default;
        return false;
    }

    /// <summary>Stores the classification of <paramref name="text"/>, replacing an empty way of its set or else one of the two at random.</summary>
    public void Add(string text, SqlClassification classification)
    {
        if (text.Length > MaxCachedLength)
        {
            return;
        }

        var index = (RuntimeHelpers.GetHashCode(text) & SetMask) * 2;
        var entries = _entries;
        if (Volatile.Read(ref entries[index]) is not null)
        {
            index += Volatile.Read(ref entries[index + 1]) is null ? 1 : (int)(Stopwatch.GetTimestamp() & 1);
        }

        Volatile.Write(ref entries[index], new Entry(text, classification));
    }

    private sealed class Entry(string text, SqlClassification classification)
    {
        public string Text { get; } = text;

        public SqlClassification Classification { get; } = classification;
    }
}
