namespace EfReplicaInterceptor;

/// <summary>
/// An immutable set of function names (and name prefixes) matched against identifiers of a command text without allocating:
/// ASCII letters compare case-insensitively (PostgreSQL folds unquoted names; a quoted name that differs only in case is also
/// matched, which errs towards the primary), and the schema is ignored (any schema may be first on the search path).
/// </summary>
internal sealed class FunctionNameSet
{
    /// <summary>PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes.</summary>
    private const int MaxNameLength = 63;
    private const int Letters = 27;

    // Indexed by first letter (a-z, then everything else) * 64 + length.
    private readonly string[]?[] _names = new string[]?[Letters * 64];

    // Per first letter: bit n set when a name of length n, or a prefix of length <= n, starts with that letter.
    private readonly ulong[] _lengthMasks = new ulong[Letters];
    private readonly string[]?[] _prefixes = new string[]?[Letters];

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
    /// quotes, ASCII lower case, at most 63 characters. <c>"Audit"."LogAccess"</c> gives <c>logaccess</c>; <c>pg_catalog.nextval</c> gives <c>nextval</c>.
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
        var name = part[0] == '"' ? part[1..^1].ToString() : part.ToString();
        Span<char> lower = stackalloc char[Math.Min(name.Length, MaxNameLength)];
        for (var i = 0; i < lower.Length; i++)
        {
            lower[i] = SqlKeywords.Lower(name[i]);
        }

        return new string(lower);
    }

    private static int LetterIndex(char c)
    {
        var index = (uint)(SqlKeywords.Lower(c) - 'a');
        return index < 26 ? (int)index : 26;
    }
}
