using System.Runtime.CompilerServices;

namespace EfReplicaInterceptor;

/// <summary>
/// Scans the body of a statement that started as a read (after its first keyword) in one tight loop over the characters: the
/// hot path of classification. It reads the text exactly as <see cref="SqlLexer"/> does (same character classes, same
/// <c>Scan*</c> methods for strings, quoted identifiers, dollar quotes and comments) but keeps its state in locals instead of
/// producing tokens, and stops at the first sign that the statement needs the primary:
/// <list type="bullet">
/// <item><c>INSERT</c>, <c>UPDATE</c>, <c>DELETE</c>, <c>MERGE</c> (a data-modifying CTE, at any depth) or <c>INTO</c> (<c>SELECT INTO</c>);</item>
/// <item><c>FOR</c> followed by <c>UPDATE</c>, <c>SHARE</c>, <c>NO</c> (KEY UPDATE) or <c>KEY</c> (SHARE): a row-locking clause;</item>
/// <item>a call <c>name(</c>, <c>"name"(</c>, <c>schema.name(</c> of a function of the call set, or <c>row.name</c> of the attribute set.</item>
/// </list>
/// A word is a keyword only where it can be one: never after a dot (<c>t.update</c> is a column), after <c>AS</c> (any word is a
/// label there, <c>SELECT 1 AS into</c>) or glued to <c>@</c> / <c>:</c> (<c>@update</c> is a parameter placeholder).
/// </summary>
internal static class SqlReadScanner
{
    private enum Previous : byte
    {
        None,
        Word,
        QuotedWord,
        Dot,
        Other,
    }

    /// <summary>A comma after a name (a token of its own: the name stops being the previous token) and the spaces after it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SkipCommaAndSpaces(ReadOnlySpan<char> text, int i, ref Previous previous)
    {
        if ((uint)i < (uint)text.Length && text[i] == ',')
        {
            previous = Previous.Other;
            i++;
            while ((uint)i < (uint)text.Length && text[i] == ' ')
            {
                i++;
            }
        }

        return i;
    }

    /// <summary>Scans from <paramref name="position"/> to the end of the statement and moves <paramref name="position"/> past it.</summary>
    /// <param name="text">The command text.</param>
    /// <param name="position">Where the body starts; on return, after the statement's semicolon (or closing parenthesis).</param>
    /// <param name="calls">Functions whose call needs the primary.</param>
    /// <param name="attributeCalls">Functions that also need the primary in attribute notation, or null.</param>
    /// <param name="depth">Parentheses already open.</param>
    /// <param name="insideParentheses">The statement is the query of <c>COPY (query)</c> and ends at the parenthesis that closes it.</param>
    /// <param name="endOfText">Set when the statement ran to the end of the text.</param>
    /// <returns><see cref="RoutingReason.Read"/>, or the reason the statement needs the primary.</returns>
    public static RoutingReason Scan(
        ReadOnlySpan<char> text, ref int position, FunctionNameSet calls, FunctionNameSet? attributeCalls, int depth, bool insideParentheses, out bool endOfText)
    {
        endOfText = false;
        var i = position;
        var previous = Previous.None;
        var wordStart = 0;
        var wordLength = 0;
        var afterFor = false;
        var afterAs = false;
        while ((uint)i < (uint)text.Length)
        {
            switch (SqlLexer.ClassOf(text[i]))
            {
                case SqlLexer.Space:
                    // EF Core indents with runs of spaces.
                    do
                    {
                        i++;
                    }
                    while ((uint)i < (uint)text.Length && text[i] == ' ');

                    // The next token is most often a word or a quoted name: go straight there, not through the jump table.
                    if ((uint)i < (uint)text.Length)
                    {
                        var next = text[i];
                        if (next == '"')
                        {
                            goto case SqlLexer.DoubleQuote;
                        }

                        if (SqlLexer.ClassOf(next) == SqlLexer.IdentStart)
                        {
                            goto case SqlLexer.IdentStart;
                        }
                    }

                    continue;

                case SqlLexer.IdentStart:
                {
                    if (SqlLexer.IsStringPrefix(text, i))
                    {
                        i = SqlLexer.ScanPrefixedString(text, i);
                        if (i < 0)
                        {
                            return RoutingReason.Unrecognized;
                        }

                        break;
                    }

                    var start = i;
                    i = SqlLexer.ScanIdentifier(text, start);
                    var wasFor = afterFor;
                    var wasAs = afterAs;
                    afterFor = false;
                    afterAs = false;
                    var word = text[start..i];
                    if (previous == Previous.Dot)
                    {
                        // After a dot a word is a name (t.update is a column); row.func is a call of func(row).
                        if (attributeCalls is not null && attributeCalls.Contains(word))
                        {
                            return RoutingReason.WriteFunction;
                        }
                    }
                    else if (SqlKeywords.MayBeReadKeyword(word)
                        && SqlKeywords.LookupInRead(word) is not SqlKeyword.None and var keyword
                        && !wasAs
                        && (start == 0 || text[start - 1] is not ('@' or ':')))
                    {
                        // (After AS every word is a label or type name; @name and :name are parameter placeholders.)
                        if (wasFor && keyword is SqlKeyword.Update or SqlKeyword.Share or SqlKeyword.No or SqlKeyword.Key)
                        {
                            return RoutingReason.LockingRead;
                        }

                        switch (keyword)
                        {
                            case SqlKeyword.Insert or SqlKeyword.Update or SqlKeyword.Delete or SqlKeyword.Merge or SqlKeyword.Into:
                                return RoutingReason.WriteStatement;
                            case SqlKeyword.For:
                                afterFor = true;
                                break;
                            case SqlKeyword.As:
                                afterAs = true;
                                break;
                        }
                    }

                    previous = Previous.Word;
                    wordStart = start;
                    wordLength = i - start;

                    // What EF Core writes most is column lists, alias."Column", alias."Column", ... Read that sequence (a word,
                    // a dot, a quoted identifier, a comma, spaces) here rather than token by token through the dispatch above,
                    // whose mispredicted jumps are the main cost of a scan. Same tokens, same state as the long way round.
                    if ((uint)(i + 2) < (uint)text.Length && text[i] == '.' && text[i + 1] == '"')
                    {
                        var quoted = i + 2;
                        var end = SqlLexer.ScanQuotedIdentifier(text, quoted);
                        if (end < 0)
                        {
                            return RoutingReason.Unrecognized;
                        }

                        if (attributeCalls is not null && attributeCalls.Contains(text[quoted..(end - 1)]))
                        {
                            return RoutingReason.WriteFunction;
                        }

                        afterFor = false;
                        afterAs = false;
                        previous = Previous.QuotedWord;
                        wordStart = quoted;
                        wordLength = end - 1 - quoted;
                        i = SkipCommaAndSpaces(text, end, ref previous);
                        if ((uint)i < (uint)text.Length && SqlLexer.ClassOf(text[i]) == SqlLexer.IdentStart)
                        {
                            goto case SqlLexer.IdentStart;
                        }
                    }

                    continue;
                }

                case SqlLexer.DoubleQuote:
                {
                    var start = i + 1;
                    i = SqlLexer.ScanQuotedIdentifier(text, start);
                    if (i < 0)
                    {
                        return RoutingReason.Unrecognized;
                    }

                    if (previous == Previous.Dot && attributeCalls is not null && attributeCalls.Contains(text[start..(i - 1)]))
                    {
                        return RoutingReason.WriteFunction;
                    }

                    afterFor = false;
                    afterAs = false;
                    previous = Previous.QuotedWord;
                    wordStart = start;
                    wordLength = i - 1 - start;
                    i = SkipCommaAndSpaces(text, i, ref previous);
                    continue;
                }

                case SqlLexer.LeftParen:
                    // name( "name"( schema.name( : a function call (or a keyword followed by a parenthesis, which no set contains).
                    if (previous is Previous.Word or Previous.QuotedWord && calls.Contains(text.Slice(wordStart, wordLength)))
                    {
                        return RoutingReason.WriteFunction;
                    }

                    depth++;
                    i++;
                    break;

                case SqlLexer.RightParen:
                    i++;
                    if (depth == 0 && insideParentheses)
                    {
                        position = i;
                        return RoutingReason.Read;
                    }

                    depth--;
                    break;

                case SqlLexer.Semicolon:
                    position = i + 1;
                    return insideParentheses ? RoutingReason.Unrecognized : RoutingReason.Read;

                case SqlLexer.Dot:
                    if (i + 1 < text.Length && (uint)(text[i + 1] - '0') <= 9)
                    {
                        i = SqlLexer.ScanNumber(text, i);
                        break;
                    }

                    i++;
                    afterFor = false;
                    afterAs = false;
                    previous = Previous.Dot;
                    continue;

                case SqlLexer.Digit:
                    i = SqlLexer.ScanNumber(text, i);
                    break;

                case SqlLexer.Quote:
                    i = SqlLexer.ScanString(text, i + 1);
                    if (i < 0)
                    {
                        return RoutingReason.Unrecognized;
                    }

                    break;

                case SqlLexer.Dollar:
                    i = SqlLexer.ScanDollar(text, i, out _);
                    if (i < 0)
                    {
                        return RoutingReason.Unrecognized;
                    }

                    break;

                // Comments separate tokens and change nothing else (nextval/**/( is still a call, FOR/**/UPDATE still a lock).
                case SqlLexer.Minus:
                    if (i + 1 < text.Length && text[i + 1] == '-')
                    {
                        i = SqlLexer.SkipLineComment(text, i + 2);
                        if (i < 0)
                        {
                            return RoutingReason.Unrecognized;
                        }

                        continue;
                    }

                    i++;
                    break;

                case SqlLexer.Slash:
                    if (i + 1 < text.Length && text[i + 1] == '*')
                    {
                        i = SqlLexer.SkipBlockComment(text, i + 2);
                        if (i < 0)
                        {
                            return RoutingReason.Unrecognized;
                        }

                        continue;
                    }

                    i++;
                    break;

                case SqlLexer.Operator:
                    i++;
                    break;

                default:
                    return RoutingReason.Unrecognized;
            }

            // Any other token: an operator, a constant, a parenthesis.
            afterFor = false;
            afterAs = false;
            previous = Previous.Other;
        }

        endOfText = true;
        position = text.Length;
        return insideParentheses ? RoutingReason.Unrecognized : RoutingReason.Read;
    }
}
