namespace EfReplicaInterceptor;

/// <summary>
/// An immutable set of function names (and name prefixes) matched against identifiers of a command text without allocating:
/// ASCII letters compare case-insensitively (PostgreSQL folds unquoted names; a quoted name that differs only in case is also
/// matched, which errs towards the primary), and the schema is ignored (any schema may be first on the search path).
/// </summary>
/// <remarks>
/// PostgreSQL truncates every identifier to 63 bytes in the database's encoding, at a character boundary, so a longer name in
/// a command calls the function whose name is its first 63 bytes. For ASCII names that is 63 characters. A name with other
/// characters is cut shorter, and how much shorter depends on the encoding, which the set does not know; so a name whose
/// truncation could end exactly where a set name ends (a set name of 60 bytes or more in some encoding) also matches every
/// longer identifier that starts with it. That errs towards the primary, for names no one writes by hand.
/// </remarks>
internal sealed class FunctionNameSet
{
    /// <summary>PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes.</summary>
    private const int MaxNameLength = 63;
    private const int MaxNameBytes = 63;
    private const int Letters = 27;

    // Indexed by first letter (a-z, then everything else) * 64 + length.
    private readonly string[]?[] _names = new string[]?[Letters * 64];

    // Per first letter: bit n set when a name of length n, or a prefix of length <= n, starts with that letter.
    private readonly ulong[] _lengthMasks = new ulong[Letters];
    private readonly string[]?[] _prefixes = new string[]?[Letters];

    // Names a truncated longer identifier may equal (see remarks); null when there are none, as for the built-in names.
    private readonly string[]? _nearLimitNames;

    /// <summary>Builds a set of <paramref name="names"/> (bare names, ASCII lower case) and <paramref name="prefixes"/> (every name starting with one of them).</summary>
    public FunctionNameSet(IEnumerable<string> names, IEnumerable<string> prefixes)
    {
        foreach (var raw in names)
        {
            var name = Normalize(raw);
            var slot = (LetterIndex(name[0]) * 64) + name.Length;
            var bucket = _names[slot];
            if (bucket is null || Array.IndexOf(bucket, name) < 0)
            {
                _names[slot] = bucket is null ? [name] : [.. bucket, name];
                _lengthMasks[LetterIndex(name[0])] |= 1UL << name.Length;
                if (MaxBytes(name) >= MaxNameBytes - 3)
                {
                    _nearLimitNames = _nearLimitNames is null ? [name] : [.. _nearLimitNames, name];
                }
            }
        }

        foreach (var raw in prefixes)
        {
            var prefix = Normalize(raw);
            var letter = LetterIndex(prefix[0]);
            _prefixes[letter] = _prefixes[letter] is { } existing ? [.. existing, prefix] : [prefix];
            _lengthMasks[letter] |= ulong.MaxValue << prefix.Length;
        }

        IsEmpty = Array.TrueForAll(_lengthMasks, mask => mask == 0);
    }

    /// <summary>True when the set matches nothing.</summary>
    public bool IsEmpty { get; }

    /// <summary>Whether <paramref name="identifier"/> (an unquoted identifier or the content of a quoted one) names a function of the set.</summary>
    public bool Contains(ReadOnlySpan<char> identifier)
    {
        if (identifier.IsEmpty)
        {
            return false;
        }

        if (_nearLimitNames is not null && identifier.Length > 1 && StartsWithNearLimitName(identifier))
        {
            return true;
        }

        if (identifier.Length > MaxNameLength)
        {
            identifier = identifier[..MaxNameLength];
        }

        var letter = LetterIndex(identifier[0]);
        if (((_lengthMasks[letter] >> identifier.Length) & 1) == 0)
        {
            return false;
        }

        if (_names[(letter * 64) + identifier.Length] is { } bucket)
        {
            foreach (var name in bucket)
            {
                if (SqlKeywords.Is(identifier, name))
                {
                    return true;
                }
            }
        }

        if (_prefixes[letter] is { } prefixes)
        {
            foreach (var prefix in prefixes)
            {
                if (identifier.Length >= prefix.Length && SqlKeywords.Is(identifier[..prefix.Length], prefix))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>
    /// The bare function name of a configured name: the part after the last dot outside double quotes, without its enclosing
    /// quotes, ASCII lower case, at most 63 bytes of UTF-8 (cut at a character boundary, as PostgreSQL cuts it).
    /// <c>"Audit"."LogAccess"</c> gives <c>logaccess</c>; <c>pg_catalog.nextval</c> gives <c>nextval</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty or malformed.</exception>
    public static string Normalize(string qualifiedName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(qualifiedName);
        var text = qualifiedName.AsSpan().Trim();
        var lastPart = 0;
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '"')
            {
                quoted = !quoted;
            }
            else if (text[i] == '.' && !quoted)
            {
                lastPart = i + 1;
            }
        }

        var part = text[lastPart..].Trim();
        if (quoted || part.IsEmpty || (part[0] == '"' && (part.Length < 3 || part[^1] != '"')))
        {
            throw new ArgumentException($"'{qualifiedName}' is not a function name.", nameof(qualifiedName));
        }

        // A quoted name is kept as written between its quotes (doubled quotes stay doubled), the form the lexer gives.
        // PostgreSQL keeps 63 bytes of a longer name; in UTF-8 that may be fewer than 63 characters.
        var name = TruncateUtf8(part[0] == '"' ? part[1..^1] : part);
        Span<char> lower = stackalloc char[name.Length];
        for (var i = 0; i < lower.Length; i++)
        {
            lower[i] = SqlKeywords.Lower(name[i]);
        }

        return new string(lower);
    }

    /// <summary>
    /// The most bytes <paramref name="name"/> can take in a PostgreSQL server encoding: one per ASCII character (every server
    /// encoding is ASCII-compatible), at most four per other UTF-16 unit.
    /// </summary>
    private static int MaxBytes(ReadOnlySpan<char> name)
    {
        var bytes = 0;
        foreach (var c in name)
        {
            bytes += c < 0x80 ? 1 : 4;
        }

        return bytes;
    }

    /// <summary>
    /// The longest start of <paramref name="name"/> that fits in 63 bytes of UTF-8 without splitting a character (what
    /// PostgreSQL keeps of a longer identifier in a UTF-8 database).
    /// </summary>
    private static ReadOnlySpan<char> TruncateUtf8(ReadOnlySpan<char> name)
    {
        var bytes = 0;
        var i = 0;
        while (i < name.Length)
        {
            var c = name[i];
            var pair = char.IsHighSurrogate(c) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1]);
            var size = c < 0x80 ? 1 : c < 0x800 ? 2 : pair ? 4 : 3;
            if (bytes + size > MaxNameBytes)
            {
                break;
            }

            bytes += size;
            i += pair ? 2 : 1;
        }

        return name[..i];
    }

    private bool StartsWithNearLimitName(ReadOnlySpan<char> identifier)
    {
        foreach (var name in _nearLimitNames!)
        {
            if (identifier.Length > name.Length && SqlKeywords.Is(identifier[..name.Length], name))
            {
                return true;
            }
        }

        return false;
    }

    private static int LetterIndex(char c)
    {
        var index = (uint)(SqlKeywords.Lower(c) - 'a');
        return index < 26 ? (int)index : 26;
    }
}
