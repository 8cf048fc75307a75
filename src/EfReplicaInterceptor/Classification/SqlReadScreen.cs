using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace EfReplicaInterceptor;

/// <summary>
/// A vectorised screen in front of <see cref="SqlStatementAnalyzer"/> that accepts the common case, one <c>SELECT</c> as EF Core
/// writes it, without tokenising it. It only ever answers "certainly a plain read" or "don't know"; "don't know" sends the text
/// through the analyzer, so the screen may refuse anything odd but must never accept a text the analyzer would not classify as a
/// plain read.
/// </summary>
/// <remarks>
/// <para>
/// It accepts a text when, after whitespace and <c>--</c> tag lines (EF's <c>TagWith</c>), it starts with the word <c>SELECT</c> and
/// the rest has:
/// </para>
/// <list type="number">
/// <item>no <c>INSERT</c>, <c>UPDATE</c>, <c>DELETE</c>, <c>MERGE</c>, <c>INTO</c> or <c>FOR</c> as a whole word anywhere, inside
/// strings and quoted names included (so <c>"IsDeleted"</c> passes and <c>"Update"</c> does not). The analyzer can only return a
/// write or a locking read on one of these words, and any identifier token of the analyzer is such a whole word: a token ends where
/// identifier characters end, and only a digit or <c>$</c> (refused below) can end a token right before an identifier starts;</item>
/// <item>no parenthesis after a name (unquoted, or a quoted name without doubled quotes) of the function set, looked up the same
/// way the analyzer looks it up; a name that starts with a digit, or follows a digit and a dot, is refused rather than split
/// into a number and a word as the analyzer would (<c>1nextval(</c>, <c>1.e1nextval(</c>: found by an adversarial review);</item>
/// <item>no occurrence of an application write function's name anywhere (their attribute notation, <c>row.name</c>);</item>
/// <item>none of <c>$ ;</c>, DEL or a control character other than whitespace, no <c>--</c>, <c>/*</c> or <c>&amp;"</c>, and
/// <c>{ } \</c> only inside <c>'...'</c> strings (JSON paths, <c>LIKE ... ESCAPE '\'</c>, EF's <c>btrim(..., E' \t\n\r')</c>):
/// then there are no dollar quotes, comments, batches or Unicode identifiers, and every string and <c>"..."</c> name is
/// delimited by its quotes, doubled quotes and, in <c>E'...'</c>, backslash escapes. Where the screen cannot tell an
/// <c>E'...'</c> string from a plain one it refuses the first backslash in it, which comes before any quote the two readings
/// could disagree on. A pair of adjacent double quotes (an empty or a doubled name) is refused too;</item>
/// <item>every string and quoted name closed at the end.</item>
/// </list>
/// <para>
/// The characters are classified 32 at a time into bit masks (quotes, characters to look at, characters that refuse, characters
/// allowed only in strings); a block without single quotes or string-only characters moves the quote state by the parity of
/// its double quotes, so EF's many <c>alias."Column"</c> names cost nothing one by one. Unit tests check the screen against the
/// analyzer on the whole corpus, at every block edge and on random texts built to hit its rules; the standby oracle runs the
/// corpus through both.
/// </para>
/// </remarks>
internal static class SqlReadScreen
{
    private const int BlockSize = 32;

    // The quote state between blocks.
    private const int Outside = 0;
    private const int InQuotedName = 1;
    private const int InString = 2;

    /// <summary>How a backslash reads in the current string.</summary>
    private enum StringKind : byte
    {
        /// <summary>As itself (<c>'...'</c> with <c>standard_conforming_strings</c> on, <c>U&amp;'...'</c>).</summary>
        Plain,

        /// <summary>As an escape of the next character (<c>E'...'</c>).</summary>
        Escape,

        /// <summary>Either: the screen refuses a backslash in it.</summary>
        Unclear,
    }

    /// <summary>The words on which <see cref="SqlReadScanner"/> can decide that a statement needs the primary.</summary>
    private static readonly SearchValues<string> DecidingWords =
        SearchValues.Create(["insert", "update", "delete", "merge", "into", "for"], StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// True only if <paramref name="text"/> is a single <c>SELECT</c> that <see cref="SqlStatementAnalyzer.Classify"/> classifies as
    /// a plain read with the same sets; false when it is not, or when the screen cannot tell.
    /// </summary>
    /// <param name="text">The command text.</param>
    /// <param name="calls">The function set the analyzer gets.</param>
    /// <param name="attributeNames">The bare names of the analyzer's attribute-notation set, or null when it has none.</param>
    public static bool IsPlainRead(ReadOnlySpan<char> text, FunctionNameSet calls, SearchValues<string>? attributeNames)
    {
        var body = SkipSelect(text);
        return body >= 0
            && !ContainsDecidingWord(text, body)
            && (attributeNames is null || text[body..].IndexOfAny(attributeNames) < 0)
            && ScanStructure(text, body, calls);
    }

    /// <summary>The index after a leading <c>SELECT</c> (after whitespace and <c>--</c> lines), or -1.</summary>
    private static int SkipSelect(ReadOnlySpan<char> text)
    {
        var i = 0;
        while (true)
        {
            while (i < text.Length && SqlLexer.ClassOf(text[i]) == SqlLexer.Space)
            {
                i++;
            }

            if (i + 1 < text.Length && text[i] == '-' && text[i + 1] == '-')
            {
                i = SqlLexer.SkipLineComment(text, i + 2);
                if (i < 0)
                {
                    return -1;
                }

                continue;
            }

            break;
        }

        const int Length = 6;
        if (i + Length > text.Length || !SqlKeywords.Is(text.Slice(i, Length), "select"))
        {
            return -1;
        }

        i += Length;
        return i < text.Length && SqlLexer.IsIdentifierPart(text[i]) ? -1 : i;
    }

    /// <summary>Whether a deciding word occurs from <paramref name="from"/> on as a whole word that could be a token of its own.</summary>
    private static bool ContainsDecidingWord(ReadOnlySpan<char> text, int from)
    {
        while (true)
        {
            var found = text[from..].IndexOfAny(DecidingWords);
            if (found < 0)
            {
                return false;
            }

            var start = from + found;
            var before = text[start - 1];
            if (!SqlLexer.IsIdentifierPart(before) || IsDigit(before))
            {
                var keyword = SqlKeywords.LookupInRead(text[start..SqlLexer.ScanIdentifier(text, start)]);
                if (keyword is SqlKeyword.Insert or SqlKeyword.Update or SqlKeyword.Delete or SqlKeyword.Merge or SqlKeyword.Into or SqlKeyword.For)
                {
                    return true;
                }
            }

            from = start + 1;
        }
    }

    /// <summary>Checks the characters from <paramref name="body"/> on: conditions 2, 4 and 5 of the remarks.</summary>
    private static bool ScanStructure(ReadOnlySpan<char> text, int body, FunctionNameSet calls)
    {
        Span<char> tail = stackalloc char[BlockSize];
        var state = Outside;
        var stringKind = StringKind.Plain;
        var skip = -1;
        var previousEndedWithDoubleQuote = false;
        for (var block = body; block < text.Length; block += BlockSize)
        {
            uint doubleQuotes, singleQuotes, lookAt, refuse, inStringOnly;
            if (block + BlockSize <= text.Length)
            {
                Classify(text.Slice(block, BlockSize), out doubleQuotes, out singleQuotes, out lookAt, out refuse, out inStringOnly);
            }
            else
            {
                // The last, partial block: padded with spaces, which are in none of the masks.
                tail.Fill(' ');
                text[block..].CopyTo(tail);
                Classify(tail, out doubleQuotes, out singleQuotes, out lookAt, out refuse, out inStringOnly);
            }

            // Two double quotes in a row are an empty name (refused by the analyzer) or a doubled quote: not worth following.
            if (refuse != 0
                || (doubleQuotes & (doubleQuotes >> 1)) != 0
                || (previousEndedWithDoubleQuote && (doubleQuotes & 1) != 0))
            {
                return false;
            }

            previousEndedWithDoubleQuote = (doubleQuotes >> (BlockSize - 1)) != 0;
            while (lookAt != 0)
            {
                var position = block + BitOperations.TrailingZeroCount(lookAt);
                lookAt &= lookAt - 1;
                var next = position + 1 < text.Length ? text[position + 1] : ' ';
                var refused = text[position] switch
                {
                    '(' => FollowsFunctionName(text, position, calls),
                    '-' => next == '-',
                    '/' => next == '*',
                    _ => next == '"', // &": a Unicode-escaped name, U&"..."
                };

                if (refused)
                {
                    return false;
                }
            }

            if ((singleQuotes | inStringOnly) == 0)
            {
                // Inside a string double quotes are text; elsewhere each one opens or closes a name.
                if (state != InString)
                {
                    state ^= BitOperations.PopCount(doubleQuotes) & 1;
                }

                continue;
            }

            // Quotes and the characters allowed only inside strings, in text order.
            var events = doubleQuotes | singleQuotes | inStringOnly;
            while (events != 0)
            {
                var position = block + BitOperations.TrailingZeroCount(events);
                events &= events - 1;
                if (position == skip)
                {
                    continue;
                }

                var c = text[position];
                if (c == '"')
                {
                    if (state != InString)
                    {
                        state ^= InQuotedName;
                    }
                }
                else if (c != '\'')
                {
                    // { } \ are refused outside strings. In E'...' a backslash escapes the next character (a quote too).
                    if (state != InString)
                    {
                        return false;
                    }

                    if (c == '\\' && stringKind != StringKind.Plain)
                    {
                        if (stringKind == StringKind.Unclear)
                        {
                            return false;
                        }

                        skip = position + 1;
                    }
                }
                else if (state == Outside)
                {
                    state = InString;
                    stringKind = KindOfString(text, position);
                }
                else if (state == InString)
                {
                    // '' inside a string is a quote; the second one is not looked at again.
                    if (position + 1 < text.Length && text[position + 1] == '\'')
                    {
                        skip = position + 1;
                    }
                    else
                    {
                        state = Outside;
                    }
                }
            }
        }

        return state == Outside;
    }

    /// <summary>
    /// Whether the string opened by the quote at <paramref name="quote"/> is an <c>E'...'</c> string to the analyzer, that is,
    /// whether an <c>E</c> before the quote starts a token: it does after a character that is not part of an identifier, it does
    /// not after a letter (<c>nameE'...'</c> is a name and a plain string: no token ends in a letter right before another
    /// starts), and after a digit it depends on how the number before it is read (<c>1e'..'</c>, <c>1e5e'..'</c>,
    /// <c>b1e'..'</c>), which is not worth following: <see cref="StringKind.Unclear"/>.
    /// </summary>
    private static StringKind KindOfString(ReadOnlySpan<char> text, int quote)
    {
        if ((text[quote - 1] | 0x20) != 'e')
        {
            return StringKind.Plain;
        }

        var before = text[quote - 2];
        return !SqlLexer.IsIdentifierPart(before) ? StringKind.Escape : IsDigit(before) ? StringKind.Unclear : StringKind.Plain;
    }

    /// <summary>Whether the parenthesis at <paramref name="position"/> follows a name of <paramref name="calls"/>, or a name the screen does not read.</summary>
    private static bool FollowsFunctionName(ReadOnlySpan<char> text, int position, FunctionNameSet calls)
    {
        var end = position - 1;
        while (end >= 0 && SqlLexer.ClassOf(text[end]) == SqlLexer.Space)
        {
            end--;
        }

        if (end < 0)
        {
            return false;
        }

        if (text[end] == '"')
        {
            // "name"( : the opening quote is the previous double quote unless the name holds doubled quotes.
            var open = text[..end].LastIndexOf('"');
            return open < 0 || open == end - 1 || (open > 0 && text[open - 1] == '"') || calls.Contains(text[(open + 1)..end]);
        }

        if (!SqlLexer.IsIdentifierPart(text[end]))
        {
            return false;
        }

        var start = end;
        while (start > 0 && SqlLexer.IsIdentifierPart(text[start - 1]))
        {
            start--;
        }

        // 1nextval( and 1.e1nextval( are a number and a word to the analyzer (a number may run on after a dot: 1.e1); not worth
        // splitting here.
        return IsDigit(text[start])
            || (start >= 2 && text[start - 1] == '.' && IsDigit(text[start - 2]))
            || calls.Contains(text[start..(end + 1)]);
    }

    /// <summary>
    /// Bit masks of 32 characters: double quotes, single quotes, characters to look at (<c>( - / &amp;</c>), characters that
    /// refuse the text (<c>$ ;</c>, DEL, control characters other than whitespace) and characters allowed only inside a string
    /// (<c>{ } \</c>: JSON paths and <c>LIKE ... ESCAPE '\'</c>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Classify(
        ReadOnlySpan<char> block, out uint doubleQuotes, out uint singleQuotes, out uint lookAt, out uint refuse, out uint inStringOnly)
    {
        ref var first = ref Unsafe.As<char, ushort>(ref MemoryMarshal.GetReference(block));
        if (Vector256.IsHardwareAccelerated)
        {
            var bytes = Narrow(Vector256.LoadUnsafe(ref first), Vector256.LoadUnsafe(ref first, 16));
            doubleQuotes = Vector256.Equals(bytes, Vector256.Create((byte)'"')).ExtractMostSignificantBits();
            singleQuotes = Vector256.Equals(bytes, Vector256.Create((byte)'\'')).ExtractMostSignificantBits();
            lookAt = LookAt(bytes).ExtractMostSignificantBits();
            refuse = Refuse(bytes).ExtractMostSignificantBits();
            inStringOnly = InStringOnly(bytes).ExtractMostSignificantBits();
            return;
        }

        var low = Narrow(Vector128.LoadUnsafe(ref first), Vector128.LoadUnsafe(ref first, 8));
        var high = Narrow(Vector128.LoadUnsafe(ref first, 16), Vector128.LoadUnsafe(ref first, 24));
        doubleQuotes = Vector128.Equals(low, Vector128.Create((byte)'"')).ExtractMostSignificantBits()
            | (Vector128.Equals(high, Vector128.Create((byte)'"')).ExtractMostSignificantBits() << 16);
        singleQuotes = Vector128.Equals(low, Vector128.Create((byte)'\'')).ExtractMostSignificantBits()
            | (Vector128.Equals(high, Vector128.Create((byte)'\'')).ExtractMostSignificantBits() << 16);
        lookAt = LookAt(low).ExtractMostSignificantBits() | (LookAt(high).ExtractMostSignificantBits() << 16);
        refuse = Refuse(low).ExtractMostSignificantBits() | (Refuse(high).ExtractMostSignificantBits() << 16);
        inStringOnly = InStringOnly(low).ExtractMostSignificantBits() | (InStringOnly(high).ExtractMostSignificantBits() << 16);
    }

    // Characters from U+0100 up become 0xFF, which is in no class (everything from U+0080 up is an identifier character).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Narrow(Vector256<ushort> lower, Vector256<ushort> upper) =>
        Vector256.Narrow(Vector256.Min(lower, Vector256.Create((ushort)0xFF)), Vector256.Min(upper, Vector256.Create((ushort)0xFF)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Narrow(Vector128<ushort> lower, Vector128<ushort> upper) =>
        Vector128.Narrow(Vector128.Min(lower, Vector128.Create((ushort)0xFF)), Vector128.Min(upper, Vector128.Create((ushort)0xFF)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> LookAt(Vector256<byte> c) =>
        Vector256.Equals(c, Vector256.Create((byte)'('))
        | Vector256.Equals(c, Vector256.Create((byte)'-'))
        | Vector256.Equals(c, Vector256.Create((byte)'/'))
        | Vector256.Equals(c, Vector256.Create((byte)'&'));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> LookAt(Vector128<byte> c) =>
        Vector128.Equals(c, Vector128.Create((byte)'('))
        | Vector128.Equals(c, Vector128.Create((byte)'-'))
        | Vector128.Equals(c, Vector128.Create((byte)'/'))
        | Vector128.Equals(c, Vector128.Create((byte)'&'));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Refuse(Vector256<byte> c) =>
        Vector256.AndNot(Vector256.LessThan(c, Vector256.Create((byte)0x20)), Vector256.LessThan(c - Vector256.Create((byte)'\t'), Vector256.Create((byte)5)))
        | Vector256.Equals(c, Vector256.Create((byte)'$'))
        | Vector256.Equals(c, Vector256.Create((byte)';'))
        | Vector256.Equals(c, Vector256.Create((byte)0x7F));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> InStringOnly(Vector256<byte> c) =>
        Vector256.Equals(c, Vector256.Create((byte)'\\'))
        | Vector256.Equals(c, Vector256.Create((byte)'{'))
        | Vector256.Equals(c, Vector256.Create((byte)'}'));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Refuse(Vector128<byte> c) =>
        Vector128.AndNot(Vector128.LessThan(c, Vector128.Create((byte)0x20)), Vector128.LessThan(c - Vector128.Create((byte)'\t'), Vector128.Create((byte)5)))
        | Vector128.Equals(c, Vector128.Create((byte)'$'))
        | Vector128.Equals(c, Vector128.Create((byte)';'))
        | Vector128.Equals(c, Vector128.Create((byte)0x7F));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> InStringOnly(Vector128<byte> c) =>
        Vector128.Equals(c, Vector128.Create((byte)'\\'))
        | Vector128.Equals(c, Vector128.Create((byte)'{'))
        | Vector128.Equals(c, Vector128.Create((byte)'}'));

    private static bool IsDigit(char c) => (uint)(c - '0') <= 9;
}
