using System.Runtime.CompilerServices;

namespace EfReplicaInterceptor;

/// <summary>
/// A single-pass, allocation-free lexer that splits a PostgreSQL command text the way the server's lexer (<c>scan.l</c>) does,
/// as far as classification needs: whitespace and comments (<c>--</c> to the end of the line, nested <c>/* */</c>) are skipped;
/// string constants (<c>'...'</c> with doubled quotes, <c>E'...'</c> with backslash escapes, <c>U&amp;'...'</c>,
/// <c>$$...$$</c> and <c>$tag$...$tag$</c>) and quoted identifiers become single tokens, so a keyword inside them changes nothing.
/// </summary>
/// <remarks>
/// <para>
/// Assumes <c>standard_conforming_strings = on</c> (PostgreSQL's default since 9.1): a backslash in a plain <c>'...'</c> string is an
/// ordinary character. Operator characters are returned one per token: classification never needs whole operators, and this keeps
/// <c>--</c> and <c>/*</c> inside an operator starting a comment, as the server's lexer does.
/// </para>
/// <para>
/// The multi-character constructs are read by the static <c>Scan*</c> methods, shared with <see cref="SqlReadScanner"/>, which
/// runs the same character classes in one fused loop for the bulk of a read.
/// </para>
/// </remarks>
internal ref struct SqlLexer
{
    // Character classes (see Classes).
    internal const byte Invalid = 0;
    internal const byte Space = 1;
    internal const byte IdentStart = 2;
    internal const byte Digit = 3;
    internal const byte Quote = 4;
    internal const byte DoubleQuote = 5;
    internal const byte Dollar = 6;
    internal const byte LeftParen = 7;
    internal const byte RightParen = 8;
    internal const byte Semicolon = 9;
    internal const byte Dot = 10;
    internal const byte Minus = 11;
    internal const byte Slash = 12;
    internal const byte Operator = 13;

    /// <summary>The position after an error.</summary>
    private const int Failed = -1;

    private readonly ReadOnlySpan<char> _text;
    private int _position;

    /// <summary>Creates a lexer over <paramref name="text"/>.</summary>
    public SqlLexer(ReadOnlySpan<char> text)
    {
        _text = text;
        _position = 0;
    }

    /// <summary>The text being read.</summary>
    public readonly ReadOnlySpan<char> Text => _text;

    /// <summary>Where the next token starts to be looked for; -1 after an error. <see cref="SqlReadScanner"/> takes over from here and hands back.</summary>
    public int Position
    {
        readonly get => _position;
        set => _position = value;
    }

    /// <summary>
    /// Character classes of ASCII: whitespace is PostgreSQL's <c>[ \t\n\r\f\v]</c>; operator characters are
    /// <c>~!@#^&amp;|`?+-*/%&lt;&gt;=</c>, plus <c>,</c> <c>[</c> <c>]</c> <c>:</c>; control characters (NUL included), <c>\</c>,
    /// <c>{</c>, <c>}</c> and DEL are invalid. Every character from U+0080 up is an identifier character.
    /// </summary>
    internal static ReadOnlySpan<byte> Classes =>
    [
        // 0x00-0x0F: NUL..SI; \t \n \v \f \r are whitespace
        0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0,
        // 0x10-0x1F
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // 0x20-0x2F: space ! " # $ % & ' ( ) * + , - . /
        1, 13, 5, 13, 6, 13, 13, 4, 7, 8, 13, 13, 13, 11, 10, 12,
        // 0x30-0x3F: 0-9 : ; < = > ?
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 13, 9, 13, 13, 13, 13,
        // 0x40-0x4F: @ A-O
        13, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        // 0x50-0x5F: P-Z [ \ ] ^ _
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 13, 0, 13, 13, 2,
        // 0x60-0x6F: ` a-o
        13, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        // 0x70-0x7F: p-z { | } ~ DEL
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 13, 0, 13, 0,
    ];

    /// <summary>1 for PostgreSQL's <c>ident_cont</c> in ASCII: letters, digits, <c>_</c> and <c>$</c>.</summary>
    private static ReadOnlySpan<byte> IdentifierParts =>
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
        0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
        0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    ];

    /// <summary>The class of <paramref name="c"/>: one of the constants above.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte ClassOf(char c) => c < 0x80 ? Classes[c] : IdentStart;

    /// <summary>PostgreSQL's <c>ident_cont</c>: letters, digits, <c>_</c>, <c>$</c> and every non-ASCII character.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsIdentifierPart(char c) => c >= 0x80 || IdentifierParts[c] != 0;

    /// <summary>PostgreSQL's <c>ident_start</c> (and <c>dolq_start</c>): letters, <c>_</c> and every non-ASCII character.</summary>
    public static bool IsIdentifierStart(char c) => c >= 0x80 || Classes[c] == IdentStart;

    /// <summary>Reads the next token. After <see cref="SqlTokenKind.End"/> or <see cref="SqlTokenKind.Error"/> it keeps returning the same kind.</summary>
    public SqlToken Next()
    {
        var text = _text;
        var i = _position;
        if (i == Failed)
        {
            return new SqlToken(SqlTokenKind.Error, text.Length, 0);
        }

        while ((uint)i < (uint)text.Length)
        {
            var c = text[i];
            int end;
            switch (ClassOf(c))
            {
                case Space:
                    i++;
                    continue;

                case IdentStart:
                    end = ScanWord(text, i, out var isString);
                    return end < 0 ? Fail() : Token(isString ? SqlTokenKind.String : SqlTokenKind.Identifier, i, end);

                case Digit:
                    return Token(SqlTokenKind.Number, i, ScanNumber(text, i));

                case Quote:
                    end = ScanString(text, i + 1);
                    return end < 0 ? Fail() : Token(SqlTokenKind.String, i, end);

                case DoubleQuote:
                    end = ScanQuotedIdentifier(text, i + 1);
                    if (end < 0)
                    {
                        return Fail();
                    }

                    // The token covers the content between the quotes.
                    _position = end;
                    return new SqlToken(SqlTokenKind.QuotedIdentifier, i + 1, end - i - 2);

                case Dollar:
                    end = ScanDollar(text, i, out var isParameter);
                    return end < 0 ? Fail() : Token(isParameter ? SqlTokenKind.Parameter : SqlTokenKind.String, i, end);

                case LeftParen:
                    return Token(SqlTokenKind.LeftParen, i, i + 1);

                case RightParen:
                    return Token(SqlTokenKind.RightParen, i, i + 1);

                case Semicolon:
                    return Token(SqlTokenKind.Semicolon, i, i + 1);

                case Dot:
                    return i + 1 < text.Length && (uint)(text[i + 1] - '0') <= 9
                        ? Token(SqlTokenKind.Number, i, ScanNumber(text, i))
                        : Token(SqlTokenKind.Dot, i, i + 1);

                case Minus:
                    if (i + 1 < text.Length && text[i + 1] == '-')
                    {
                        i = SkipLineComment(text, i + 2);
                        if (i < 0)
                        {
                            return Fail();
                        }

                        continue;
                    }

                    return Token(SqlTokenKind.Other, i, i + 1);

                case Slash:
                    if (i + 1 < text.Length && text[i + 1] == '*')
                    {
                        i = SkipBlockComment(text, i + 2);
                        if (i < 0)
                        {
                            return Fail();
                        }

                        continue;
                    }

                    return Token(SqlTokenKind.Other, i, i + 1);

                case Operator:
                    return Token(SqlTokenKind.Other, i, i + 1);

                default:
                    return Fail();
            }
        }

        _position = text.Length;
        return new SqlToken(SqlTokenKind.End, text.Length, 0);
    }

    /// <summary>
    /// Reads what starts with an identifier character at <paramref name="start"/>: an identifier, or an <c>E'...'</c> or
    /// <c>U&amp;'...'</c> string (<paramref name="isString"/>). Returns the index after it, or -1 for something unreadable
    /// (an unterminated string, or a <c>U&amp;"..."</c> identifier: it may spell any name with escapes and a <c>UESCAPE</c>
    /// clause, and no generated SQL uses it, so it is not worth decoding).
    /// </summary>
    public static int ScanWord(ReadOnlySpan<char> text, int start, out bool isString)
    {
        isString = IsStringPrefix(text, start);
        return isString ? ScanPrefixedString(text, start) : ScanIdentifier(text, start);
    }

    /// <summary>Whether the identifier character at <paramref name="start"/> opens <c>E'</c>, <c>U&amp;'</c> or <c>U&amp;"</c> rather than an identifier.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsStringPrefix(ReadOnlySpan<char> text, int start)
    {
        var i = start + 1;
        if (i >= text.Length)
        {
            return false;
        }

        var next = text[i];
        return (next == '\'' && (text[start] | 0x20) == 'e')
            || (next == '&' && (text[start] | 0x20) == 'u' && i + 1 < text.Length && text[i + 1] is '\'' or '"');
    }

    /// <summary>Reads the <c>E'...'</c>, <c>U&amp;'...'</c> or <c>U&amp;"...</c> that <see cref="IsStringPrefix"/> found at <paramref name="start"/>; returns the index after it, or -1.</summary>
    public static int ScanPrefixedString(ReadOnlySpan<char> text, int start)
    {
        if ((text[start] | 0x20) == 'e')
        {
            return ScanEscapeString(text, start + 2);
        }

        return text[start + 2] == '\'' ? ScanString(text, start + 3) : -1;
    }

    /// <summary>An identifier starting at <paramref name="start"/>; returns the index after it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ScanIdentifier(ReadOnlySpan<char> text, int start)
    {
        var i = start + 1;
        while ((uint)i < (uint)text.Length && IsIdentifierPart(text[i]))
        {
            i++;
        }

        return i;
    }

    /// <summary>Digits, one fraction and an exponent; returns the index after them.</summary>
    /// <remarks>
    /// A letter ends the number: PostgreSQL 15+ rejects "1for" as trailing junk, older versions read it as "1" then "for";
    /// reading the letters as a new token is right for the latter and harmless for the former.
    /// </remarks>
    public static int ScanNumber(ReadOnlySpan<char> text, int start)
    {
        var i = start;
        while (i < text.Length && (uint)(text[i] - '0') <= 9)
        {
            i++;
        }

        if (i < text.Length && text[i] == '.' && !(i + 1 < text.Length && text[i + 1] == '.'))
        {
            i++;
            while (i < text.Length && (uint)(text[i] - '0') <= 9)
            {
                i++;
            }
        }

        if (i < text.Length && (text[i] | 0x20) == 'e')
        {
            var j = i + 1;
            if (j < text.Length && text[j] is '+' or '-')
            {
                j++;
            }

            if (j < text.Length && (uint)(text[j] - '0') <= 9)
            {
                i = j;
                while (i < text.Length && (uint)(text[i] - '0') <= 9)
                {
                    i++;
                }
            }
        }

        return i;
    }

    /// <summary>
    /// A string whose only escape is a doubled quote (<c>'...'</c>, <c>U&amp;'...'</c>, and <c>N'</c>, <c>B'</c>, <c>X'</c> after
    /// their letter) whose content starts at <paramref name="i"/>; returns the index after the closing quote, or -1.
    /// </summary>
    public static int ScanString(ReadOnlySpan<char> text, int i)
    {
        while (true)
        {
            var stop = text[i..].IndexOfAny('\'', '\0');
            if (stop < 0 || text[i + stop] == '\0')
            {
                return -1;
            }

            i += stop + 1;
            if (i < text.Length && text[i] == '\'')
            {
                i++;
                continue;
            }

            return i;
        }
    }

    /// <summary>An <c>E'...'</c> string (a backslash escapes the next character, a quote included; a doubled quote is a quote) whose content starts at <paramref name="i"/>; returns the index after it, or -1.</summary>
    public static int ScanEscapeString(ReadOnlySpan<char> text, int i)
    {
        while (true)
        {
            var stop = text[i..].IndexOfAny('\'', '\\', '\0');
            if (stop < 0)
            {
                return -1;
            }

            i += stop;
            switch (text[i])
            {
                case '\0':
                    return -1;
                case '\\':
                    i += 2;
                    if (i >= text.Length || text[i - 1] == '\0')
                    {
                        return -1;
                    }

                    continue;
            }

            i++;
            if (i < text.Length && text[i] == '\'')
            {
                i++;
                continue;
            }

            return i;
        }
    }

    /// <summary>A quoted identifier (doubled quotes inside) whose content starts at <paramref name="i"/>; returns the index after the closing quote, or -1 (unterminated, empty, NUL).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ScanQuotedIdentifier(ReadOnlySpan<char> text, int i)
    {
        var contentStart = i;

        // Most quoted identifiers are short column names ("Id", "BlogId"): a plain loop beats a vectorized search.
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '"')
            {
                if (i + 1 < text.Length && text[i + 1] == '"')
                {
                    i += 2;
                    continue;
                }

                return i == contentStart ? -1 : i + 1;
            }

            if (c == '\0')
            {
                return -1;
            }

            i++;
        }

        return -1;
    }

    /// <summary>
    /// <c>$1</c> (a parameter), or <c>$$</c> / <c>$tag$</c> opening a dollar-quoted string that ends at the same delimiter.
    /// Returns the index after it, or -1 (a lone <c>$</c>, which no statement accepts, or an unterminated string).
    /// </summary>
    public static int ScanDollar(ReadOnlySpan<char> text, int start, out bool isParameter)
    {
        var i = start + 1;
        isParameter = i < text.Length && (uint)(text[i] - '0') <= 9;
        if (isParameter)
        {
            while (i < text.Length && (uint)(text[i] - '0') <= 9)
            {
                i++;
            }

            return i;
        }

        // dolqdelim: \$ (dolq_start dolq_cont*)? \$, where dolq_cont is an identifier character other than $.
        if (i < text.Length && IsIdentifierStart(text[i]))
        {
            i++;
            while (i < text.Length && text[i] != '$' && IsIdentifierPart(text[i]))
            {
                i++;
            }
        }

        if (i >= text.Length || text[i] != '$')
        {
            return -1;
        }

        var delimiter = text[start..(i + 1)];
        var bodyStart = i + 1;
        var close = text[bodyStart..].IndexOf(delimiter, StringComparison.Ordinal);
        if (close < 0 || text.Slice(bodyStart, close).Contains('\0'))
        {
            return -1;
        }

        return bodyStart + close + delimiter.Length;
    }

    /// <summary>Skips a <c>--</c> comment whose text starts at <paramref name="i"/>; it ends at \n or \r (PostgreSQL's non_newline is [^\n\r]). Returns the index after it, or -1 for a NUL.</summary>
    public static int SkipLineComment(ReadOnlySpan<char> text, int i)
    {
        var end = text[i..].IndexOfAny('\n', '\r', '\0');
        if (end < 0)
        {
            return text.Length;
        }

        i += end;
        return text[i] == '\0' ? -1 : i + 1;
    }

    /// <summary>Skips a block comment whose opening <c>/*</c> ends just before <paramref name="i"/>; returns the index after it, or -1 if it never ends.</summary>
    public static int SkipBlockComment(ReadOnlySpan<char> text, int i)
    {
        var depth = 1;
        while (true)
        {
            var stop = text[i..].IndexOfAny('*', '/', '\0');
            if (stop < 0)
            {
                return -1;
            }

            i += stop;
            if (i + 1 >= text.Length || text[i] == '\0')
            {
                return -1;
            }

            if (text[i] == '*' && text[i + 1] == '/')
            {
                i += 2;
                if (--depth == 0)
                {
                    return i;
                }
            }
            else if (text[i] == '/' && text[i + 1] == '*')
            {
                i += 2;
                depth++;
            }
            else
            {
                i++;
            }
        }
    }

    private SqlToken Token(SqlTokenKind kind, int start, int end)
    {
        _position = end;
        return new SqlToken(kind, start, end - start);
    }

    private SqlToken Fail()
    {
        // Every later call returns Error too.
        _position = Failed;
        return new SqlToken(SqlTokenKind.Error, _text.Length, 0);
    }
}
