using System.Buffers.Binary;
using System.Buffers.Text;

namespace EfReplicaInterceptor.Consistency;

/// <summary>One database cluster's part of a token: its system identifier and the WAL position a scope needs there.</summary>
internal readonly record struct TokenPosition(ulong SystemIdentifier, ulong Lsn);

/// <summary>
/// The compact, opaque form of a consistency scope's positions, one per database cluster it used. One cluster:
/// <c>efr1.</c> followed by base64url of the cluster's system identifier (8 bytes) and a WAL position (8 bytes), 27
/// characters in all. Several: <c>efr2.</c> followed by base64url of such pairs, at most <see cref="MaxClusters"/> (a
/// request that wrote to two clusters reads both writes back in its next request). Both forms are read, so tokens issued
/// before the second existed stay valid. A token carries no secret and needs none: the worst a forged token can do is ask
/// for a position the primary has not reached, and such a position is clamped to the primary's current one when the token
/// is first used.
/// </summary>
internal static class ConsistencyToken
{
    /// <summary>One cluster's token.</summary>
    public const string Prefix = "efr1.";

    /// <summary>Several clusters' token.</summary>
    public const string MultiPrefix = "efr2.";

    /// <summary>The most clusters one token speaks for (the token stays under 200 characters, fine in a cookie).</summary>
    public const int MaxClusters = 8;

    private const int PartBytes = 16;

    public static string Format(ulong systemIdentifier, ulong lsn) => Format([new TokenPosition(systemIdentifier, lsn)]);

    /// <summary>The token for <paramref name="positions"/> (one per cluster, at most <see cref="MaxClusters"/>): <c>efr1.</c> for one, <c>efr2.</c> for several.</summary>
    public static string Format(ReadOnlySpan<TokenPosition> positions)
    {
        ArgumentOutOfRangeException.ThrowIfZero(positions.Length, nameof(positions));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(positions.Length, MaxClusters, nameof(positions));
        Span<byte> payload = stackalloc byte[PartBytes * MaxClusters];
        payload = payload[..(PartBytes * positions.Length)];
        for (var i = 0; i < positions.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(payload[(i * PartBytes)..], positions[i].SystemIdentifier);
            BinaryPrimitives.WriteUInt64BigEndian(payload[((i * PartBytes) + 8)..], positions[i].Lsn);
        }

        return (positions.Length == 1 ? Prefix : MultiPrefix) + Base64Url.EncodeToString(payload);
    }

    public static bool TryParse(string? token, out ulong systemIdentifier, out ulong lsn)
    {
        systemIdentifier = 0;
        lsn = 0;
        if (!TryParse(token, out var positions) || positions.Length != 1)
        {
            return false;
        }

        (systemIdentifier, lsn) = positions[0];
        return true;
    }

    /// <summary>
    /// Reads either form: true with one position per cluster (each with a non-zero position, no cluster twice), false for
    /// anything else.
    /// </summary>
    public static bool TryParse(string? token, out TokenPosition[] positions)
    {
        positions = [];
        var multi = token?.StartsWith(MultiPrefix, StringComparison.Ordinal) == true;
        if (token is null || (!multi && !token.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            return false;
        }

        var encoded = token.AsSpan(Prefix.Length);
        if (!Base64Url.IsValid(encoded, out var length) || length % PartBytes != 0 || length == 0
            || length > PartBytes * MaxClusters || (length == PartBytes) == multi)
        {
            return false;
        }

        Span<byte> payload = stackalloc byte[(PartBytes * MaxClusters) + 2];
        if (Base64Url.DecodeFromChars(encoded, payload) != length)
        {
            return false;
        }

        var parsed = new TokenPosition[length / PartBytes];
        for (var i = 0; i < parsed.Length; i++)
        {
            var part = new TokenPosition(
                BinaryPrimitives.ReadUInt64BigEndian(payload[(i * PartBytes)..]),
                BinaryPrimitives.ReadUInt64BigEndian(payload[((i * PartBytes) + 8)..]));
            if (part.Lsn == 0 || Array.Exists(parsed[..i], other => other.SystemIdentifier == part.SystemIdentifier))
            {
                return false;
            }

            parsed[i] = part;
        }

        positions = parsed;
        return true;
    }
}
