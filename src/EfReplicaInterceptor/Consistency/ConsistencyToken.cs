using System.Buffers.Binary;
using System.Buffers.Text;

namespace EfReplicaInterceptor.Consistency;

/// <summary>
/// The compact, opaque form of a consistency scope's position: <c>efr1.</c> followed by base64url of the cluster's system
/// identifier (8 bytes) and a WAL position (8 bytes), 27 characters in all. It carries no secret and needs none: the worst a
/// forged token can do is ask for a position the primary has not reached, and such a position is clamped to the
/// primary's current one when the token is first used.
/// </summary>
internal static class ConsistencyToken
{
    public const string Prefix = "efr1.";
    private const int PayloadBytes = 16;

    public static string Format(ulong systemIdentifier, ulong lsn)
    {
        Span<byte> payload = stackalloc byte[PayloadBytes];
        BinaryPrimitives.WriteUInt64BigEndian(payload, systemIdentifier);
        BinaryPrimitives.WriteUInt64BigEndian(payload[8..], lsn);
        return Prefix + Base64Url.EncodeToString(payload);
    }

    public static bool TryParse(string? token, out ulong systemIdentifier, out ulong lsn)
    {
        systemIdentifier = 0;
        lsn = 0;
        if (token is null || !token.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        Span<byte> payload = stackalloc byte[PayloadBytes + 2];
        var encoded = token.AsSpan(Prefix.Length);
        if (!Base64Url.IsValid(encoded, out var length) || length != PayloadBytes)
        {
            return false;
        }

        if (Base64Url.DecodeFromChars(encoded, payload) != PayloadBytes)
        {
            return false;
        }

        systemIdentifier = BinaryPrimitives.ReadUInt64BigEndian(payload);
        lsn = BinaryPrimitives.ReadUInt64BigEndian(payload[8..]);
        return lsn != 0;
    }
}
