namespace EfReplicaInterceptor;

/// <summary>
/// A single-pass, allocation-free lexer that splits a PostgreSQL command text the way the server's lexer (<c>scan.l</c>) does,
/// as far as classification needs: whitespace and comments (<c>--</c> to the end of the line, nested <c>/* */</c>) are skipped;
/// string constants (<c>'...'</c> with doubled quotes, <c>E'...'</c> with backslash escapes, <c>U&amp;'...'</c>,
/// <c>$$...$$</c> and <c>$tag$...$tag$</c>) and quoted identifiers become single tokens, so a keyword inside them changes nothing.
/// </summary>
/// <remarks>
/// Assumes <c>standard_conforming_strings = on</c> (PostgreSQL's default since 9.1): a backslash in a plain <c>'...'</c> string is an
/// ordinary character. Operator characters are returned one per token: classification never needs whole operators, and this keeps
/// <c>--</c> and <c>/*</c> inside an operator starting a comment, as the server's lexer does.
/// </remarks>
internal ref struct SqlLexer
{
    private const byte Invalid = 0;
    private const byte Space = 1;
    private const byte IdentStart = 2;
    private const byte Digit = 3;
    private const byte Quote = 4;
    private const byte DoubleQuote = 5;
    private const byte Dollar = 6;
    private const byte LeftParen = 7;
    private const byte RightParen = 8;
    private const byte Semicolon = 9;
    private const byte Dot = 10;
    private const byte Minus = 11;
    private const byte Slash = 12;
    private const byte Operator = 13;

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

    /// <summary>
    /// Character classes of ASCII: whitespace is PostgreSQL's <c>[ \t\n\r\f\v]</c>; operator characters are
    /// <c>~!@#^&amp;|`?+-*/%&lt;&gt;=</c>, plus <c>,</c> <c>[</c> <c>]</c> <c>:</c>; control characters (NUL included), <c>\</c>,
    /// <c>{</c>, <c>}</c> and DEL are invalid.
    /// </summary>
    private static ReadOnlySpan<byte> Classes =>
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

    /// <summary>The text being read.</summary>
    public readonly ReadOnlySpan<char> Text => _text;

    /// <summary>PostgreSQL's <c>ident_cont</c>: letters, digits, <c>_</c>, <c>$</c> and every non-ASCII character.</summary>
    public static bool IsIdentifierPart(char c) => c >= 0x80 || Classes[c] is IdentStart or Digit || c == '$';

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
            var cls = c < 0x80 ? Classes[c] : IdentStart;
            switch (cls)
            {
                case Space:
                    i++;
                    continue;

                case IdentStart:
                    if (i + 1 < text.Length)
                    {
                        var next = text[i + 1];
                        if (next == '\'' && (c | 0x20) == 'e')
                        {
                            return ReadEscapeString(i, i + 2);
                        }

                        if (next == '&' && (c | 0x20) == 'u' && i + 2 < text.Length)
                        {
                            var quote = text[i + 2];
                            if (quote == '\'')
                            {
                                return ReadString(i, i + 3);
                            }

                            if (quote == '"')
                            {
                                // U&"..." may spell any name with escapes (and a UESCAPE clause may change the escape character):
                                // no generated SQL uses it, so it is not worth decoding.
                                return Fail();
                            }
                        }
                    }

                    return ReadIdentifier(i);

                case Digit:
                    return ReadNumber(i);

                case Quote:
                    return ReadString(i, i + 1);

                case DoubleQuote:
                    return ReadQuotedIdentifier(i + 1);

                case Dollar:
                    return ReadDollar(i);

                case LeftParen:
                    _position = i + 1;
                    return new SqlToken(SqlTokenKind.LeftParen, i, 1);

                case RightParen:
                    _position = i + 1;
                    return new SqlToken(SqlTokenKind.RightParen, i, 1);

                case Semicolon:
                    _position = i + 1;
                    return new SqlToken(SqlTokenKind.Semicolon, i, 1);

                case Dot:
                    if (i + 1 < text.Length && (uint)(text[i + 1] - '0') <= 9)
                    {
                        return ReadNumber(i);
                    }

                    _position = i + 1;
                    return new SqlToken(SqlTokenKind.Dot, i, 1);

                case Minus:
                    if (i + 1 < text.Length && text[i + 1] == '-')
                    {
                        // A line comment ends at \n or \r (PostgreSQL's non_newline is [^\n\r]).
                        var end = text[(i + 2)..].IndexOfAny('\n', '\r', '\0');
                        if (end < 0)
                        {
                            i = text.Length;
                            continue;
                        }

                        i += 2 + end;
                        if (text[i] == '\0')
                        {
                            return Fail();
                        }

                        i++;
                        continue;
                    }

                    _position = i + 1;
                    return new SqlToken(SqlTokenKind.Other, i, 1);

                case Slash:
                    if (i + 1 < text.Length && text[i + 1] == '*')
                    {
                        i = SkipBlockComment(i + 2);
                        if (i < 0)
                        {
                            return Fail();
                        }

                        continue;
                    }

                    _position = i + 1;
                    return new SqlToken(SqlTokenKind.Other, i, 1);

                case Operator:
                    _position = i + 1;
                    return new SqlToken(SqlTokenKind.Other, i, 1);

                default:
                    return Fail();
            }
        }

        _position = text.Length;
        return new SqlToken(SqlTokenKind.End, text.Length, 0);
    }

    private SqlToken Fail()
    {
        // Every later call returns Error too.
        _position = Failed;
        return new SqlToken(SqlTokenKind.Error, _text.Length, 0);
    }

    private SqlToken ReadIdentifier(int start)
    {
        var text = _text;
        var i = start + 1;
        while (i < text.Length)
        {
            var c = text[i];
            if (c < 0x80)
            {
                var cls = Classes[c];
                if (cls is not (IdentStart or Digit) && c != '$')
                {
                    break;
                }
            }

            i++;
        }

        _position = i;
        return new SqlToken(SqlTokenKind.Identifier, start, i - start);
    }

    private SqlToken ReadNumber(int start)
    {
        // Digits, one fraction and an exponent. A letter ends the number: PostgreSQL 15+ rejects "1for" as trailing junk,
        // older versions read it as "1" then "for"; reading the letters as a new token is right for the latter and harmless for the former.
        var text = _text;
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

        _position = i;
        return new SqlToken(SqlTokenKind.Number, start, i - start);
    }

    /// <summary>A string whose only escape is a doubled quote: <c>'...'</c>, <c>U&amp;'...'</c> (and <c>N'</c>, <c>B'</c>, <c>X'</c> after their letter).</summary>
    private SqlToken ReadString(int start, int contentStart)
    {
        var text = _text;
        var i = contentStart;
        while (true)
        {
            var quote = text[i..].IndexOfAny('\'', '\0');
            if (quote < 0 || text[i + quote] == '\0')
            {
                return Fail();
            }

            i += quote + 1;
            if (i < text.Length && text[i] == '\'')
            {
                i++;
                continue;
            }

            _position = i;
            return new SqlToken(SqlTokenKind.String, start, i - start);
        }
    }

    /// <summary>An <c>E'...'</c> string: a backslash escapes the next character (a quote included); a doubled quote is a quote.</summary>
    private SqlToken ReadEscapeString(int start, int contentStart)
    {
        var text = _text;
        var i = contentStart;
        while (true)
        {
            var stop = text[i..].IndexOfAny('\'', '\\', '\0');
            if (stop < 0)
            {
                return Fail();
            }

            i += stop;
            if (text[i] == '\0')
            {
                return Fail();
            }

            if (text[i] == '\\')
            {
                i += 2;
                if (i >= text.Length || text[i - 1] == '\0')
                {
                    return Fail();
                }

                continue;
            }

            i++;
            if (i < text.Length && text[i] == '\'')
            {
                i++;
                continue;
            }

            _position = i;
            return new SqlToken(SqlTokenKind.String, start, i - start);
        }
    }

    private SqlToken ReadQuotedIdentifier(int contentStart)
    {
        var text = _text;
        var i = contentStart;
        while (true)
        {
            var quote = text[i..].IndexOfAny('"', '\0');
            if (quote < 0 || text[i + quote] == '\0')
            {
                return Fail();
            }

            i += quote + 1;
            if (i < text.Length && text[i] == '"')
            {
                i++;
                continue;
            }

            _position = i;
            var length = i - 1 - contentStart;
            return length == 0 ? Fail() : new SqlToken(SqlTokenKind.QuotedIdentifier, contentStart, length);
        }
    }

    /// <summary><c>$1</c> (a parameter), or <c>$$</c> / <c>$tag$</c> opening a dollar-quoted string that ends at the same delimiter.</summary>
    private SqlToken ReadDollar(int start)
    {
        var text = _text;
        var i = start + 1;
        if (i < text.Length && (uint)(text[i] - '0') <= 9)
        {
            while (i < text.Length && (uint)(text[i] - '0') <= 9)
            {
                i++;
            }

            _position = i;
            return new SqlToken(SqlTokenKind.Parameter, start, i - start);
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
            // PostgreSQL returns a lone "$" here, which no statement accepts.
            return Fail();
        }

        var delimiter = text[start..(i + 1)];
        var bodyStart = i + 1;
        var close = text[bodyStart..].IndexOf(delimiter, StringComparison.Ordinal);
        if (close < 0 || text.Slice(bodyStart, close).Contains('\0'))
        {
            return Fail();
        }

        var end = bodyStart + close + delimiter.Length;
        _position = end;
        return new SqlToken(SqlTokenKind.String, start, end - start);
    }

    /// <summary>Skips a block comment whose opening <c>/*</c> ends just before <paramref name="i"/>; returns the index after it, or -1 if it never ends.</summary>
    private readonly int SkipBlockComment(int i)
    {
        var text = _text;
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
}
