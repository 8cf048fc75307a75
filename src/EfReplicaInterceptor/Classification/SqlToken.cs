namespace EfReplicaInterceptor;

/// <summary>The kinds of token <see cref="SqlLexer"/> produces. Comments and whitespace are never tokens.</summary>
internal enum SqlTokenKind : byte
{
    /// <summary>The end of the text.</summary>
    End = 0,

    /// <summary>An unquoted identifier or keyword (<c>select</c>, <c>b0</c>, <c>update_count</c>).</summary>
    Identifier,

    /// <summary>A quoted identifier, <c>"..."</c> or <c>U&amp;"..."</c>. <see cref="SqlToken.Start"/> and <see cref="SqlToken.Length"/> cover the content between the quotes.</summary>
    QuotedIdentifier,

    /// <summary>A string constant in any of its forms (<c>'...'</c>, <c>E'...'</c>, <c>U&amp;'...'</c>, <c>$tag$...$tag$</c>).</summary>
    String,

    /// <summary>A numeric constant.</summary>
    Number,

    /// <summary>A positional parameter, <c>$1</c>.</summary>
    Parameter,

    /// <summary><c>(</c>.</summary>
    LeftParen,

    /// <summary><c>)</c>.</summary>
    RightParen,

    /// <summary><c>;</c>, the end of a statement.</summary>
    Semicolon,

    /// <summary><c>.</c> outside a number.</summary>
    Dot,

    /// <summary>An operator character, <c>,</c>, <c>[</c>, <c>]</c> or <c>:</c>. One token per character.</summary>
    Other,

    /// <summary>Something PostgreSQL's lexer would reject or that cannot be read safely: an unterminated string, quoted identifier or
    /// comment, a character outside the SQL alphabet, a NUL character, a Unicode-escaped identifier.</summary>
    Error,
}

/// <summary>One token of a command text: a kind and the range of the text it covers.</summary>
/// <param name="Kind">The kind of token.</param>
/// <param name="Start">Index of the first character (for quoted identifiers: the first character inside the quotes).</param>
/// <param name="Length">Number of characters (for quoted identifiers: the content between the quotes, doubled quotes kept as they are).</param>
internal readonly record struct SqlToken(SqlTokenKind Kind, int Start, int Length);
