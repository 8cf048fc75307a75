namespace EfReplicaInterceptor;

/// <summary>
/// Classifies a command text statement by statement in one pass: <see cref="SqlLexer"/>'s tokens for the words that open a
/// statement, <see cref="SqlReadScanner"/> for the body of a read. A statement is a plain read
/// only when it starts as one (<c>SELECT</c>, <c>VALUES</c>, <c>TABLE</c>, <c>WITH</c>, <c>SHOW</c>, <c>EXPLAIN</c> of those,
/// <c>COPY ... TO STDOUT</c>) and none of its tokens is a write keyword (<c>INSERT UPDATE DELETE MERGE</c>, <c>SELECT INTO</c>),
/// a row-locking clause (<c>FOR UPDATE</c>, <c>FOR NO KEY UPDATE</c>, <c>FOR SHARE</c>, <c>FOR KEY SHARE</c>) or a call to a
/// function that needs the primary. Everything else needs the primary.
/// </summary>
internal static class SqlStatementAnalyzer
{
    /// <summary>Classifies every statement of <paramref name="text"/>; the result is the reason of the first statement that needs the primary.</summary>
    /// <param name="text">The command text.</param>
    /// <param name="calls">Functions whose call (<c>name(</c>) needs the primary.</param>
    /// <param name="attributeCalls">Functions that also need the primary when written in attribute notation (<c>row.name</c>), or null.</param>
    public static SqlClassification Classify(ReadOnlySpan<char> text, FunctionNameSet calls, FunctionNameSet? attributeCalls)
    {
        var lexer = new SqlLexer(text);
        var statements = 0;
        while (true)
        {
            var token = lexer.Next();
            switch (token.Kind)
            {
                case SqlTokenKind.Semicolon:
                    continue;
                case SqlTokenKind.End:
                    // Only comments and semicolons (or nothing at all): nothing to prove a read.
                    return statements > 0 ? SqlClassification.PlainRead : SqlClassification.NeedsPrimary(RoutingReason.Unrecognized);
            }

            statements++;
            var reason = ClassifyStatement(ref lexer, token, calls, attributeCalls, out var endOfText);
            if (reason != RoutingReason.Read)
            {
                return SqlClassification.NeedsPrimary(reason);
            }

            if (endOfText)
            {
                return SqlClassification.PlainRead;
            }
        }
    }

    private static RoutingReason ClassifyStatement(ref SqlLexer lexer, SqlToken token, FunctionNameSet calls, FunctionNameSet? attributeCalls, out bool endOfText)
    {
        endOfText = false;
        var parentheses = 0;
        while (true)
        {
            while (token.Kind == SqlTokenKind.LeftParen)
            {
                parentheses++;
                token = lexer.Next();
            }

            if (token.Kind != SqlTokenKind.Identifier)
            {
                return RoutingReason.Unrecognized;
            }

            var keyword = SqlKeywords.Lookup(lexer.Text.Slice(token.Start, token.Length));
            if (parentheses > 0 && keyword is not (SqlKeyword.Select or SqlKeyword.Values or SqlKeyword.Table or SqlKeyword.With))
            {
                return RoutingReason.Unrecognized;
            }

            switch (keyword)
            {
                case SqlKeyword.Select:
                case SqlKeyword.Values:
                case SqlKeyword.Table:
                case SqlKeyword.With:
                    return ScanRead(ref lexer, calls, attributeCalls, depth: 0, insideParentheses: false, out endOfText);

                case SqlKeyword.Show:
                    return SkipToEndOfStatement(ref lexer, out endOfText);

                case SqlKeyword.Copy:
                    return ClassifyCopy(ref lexer, calls, attributeCalls, out endOfText);

                case SqlKeyword.Explain:
                    // EXPLAIN [ANALYZE] [VERBOSE] stmt, or EXPLAIN (option, ...) stmt: the statement decides. EXPLAIN without ANALYZE
                    // would not execute a write, but it is not worth telling apart.
                    token = SkipExplainOptions(ref lexer, out var openedParenthesis);
                    parentheses += openedParenthesis ? 1 : 0;
                    continue;

                default:
                    return StatementReason(keyword);
            }
        }
    }

    /// <summary>The reason of a statement that is never a read, by its first keyword.</summary>
    private static RoutingReason StatementReason(SqlKeyword keyword) => keyword switch
    {
        SqlKeyword.Insert or SqlKeyword.Update or SqlKeyword.Delete or SqlKeyword.Merge
            or SqlKeyword.Create or SqlKeyword.Alter or SqlKeyword.Drop or SqlKeyword.Grant or SqlKeyword.Revoke
            or SqlKeyword.Comment or SqlKeyword.Security or SqlKeyword.Truncate or SqlKeyword.Import or SqlKeyword.Reassign
            or SqlKeyword.Call or SqlKeyword.Do
            or SqlKeyword.Vacuum or SqlKeyword.Analyze or SqlKeyword.Reindex or SqlKeyword.Cluster or SqlKeyword.Refresh
            or SqlKeyword.Checkpoint => RoutingReason.WriteStatement,
        SqlKeyword.Lock => RoutingReason.LockingRead,
        SqlKeyword.Set or SqlKeyword.Reset
            or SqlKeyword.Begin or SqlKeyword.Start or SqlKeyword.Commit or SqlKeyword.End or SqlKeyword.Rollback or SqlKeyword.Abort
            or SqlKeyword.Savepoint or SqlKeyword.Release
            or SqlKeyword.Prepare or SqlKeyword.Execute or SqlKeyword.Deallocate
            or SqlKeyword.Listen or SqlKeyword.Unlisten or SqlKeyword.Notify
            or SqlKeyword.Discard or SqlKeyword.Load
            or SqlKeyword.Declare or SqlKeyword.Fetch or SqlKeyword.Move or SqlKeyword.Close => RoutingReason.SessionStatement,
        _ => RoutingReason.Unrecognized,
    };

    /// <summary>Hands the rest of a read statement to <see cref="SqlReadScanner"/> and takes the position back.</summary>
    private static RoutingReason ScanRead(
        ref SqlLexer lexer, FunctionNameSet calls, FunctionNameSet? attributeCalls, int depth, bool insideParentheses, out bool endOfText)
    {
        var position = lexer.Position;
        var reason = SqlReadScanner.Scan(lexer.Text, ref position, calls, attributeCalls, depth, insideParentheses, out endOfText);
        lexer.Position = position;
        return reason;
    }

    /// <summary>COPY is a read only as <c>COPY table [(columns)] TO STDOUT</c> or <c>COPY (read) TO STDOUT</c>.</summary>
    private static RoutingReason ClassifyCopy(ref SqlLexer lexer, FunctionNameSet calls, FunctionNameSet? attributeCalls, out bool endOfText)
    {
        endOfText = false;
        var text = lexer.Text;
        var token = lexer.Next();
        if (token.Kind == SqlTokenKind.LeftParen)
        {
            var depth = 0;
            token = lexer.Next();
            while (token.Kind == SqlTokenKind.LeftParen)
            {
                depth++;
                token = lexer.Next();
            }

            if (token.Kind != SqlTokenKind.Identifier)
            {
                return RoutingReason.Unrecognized;
            }

            switch (SqlKeywords.Lookup(text.Slice(token.Start, token.Length)))
            {
                case SqlKeyword.Select or SqlKeyword.Values or SqlKeyword.Table or SqlKeyword.With:
                    var query = ScanRead(ref lexer, calls, attributeCalls, depth, insideParentheses: true, out _);
                    if (query != RoutingReason.Read)
                    {
                        return query;
                    }

                    break;
                case SqlKeyword.Insert or SqlKeyword.Update or SqlKeyword.Delete or SqlKeyword.Merge:
                    // COPY (INSERT ... RETURNING ...) TO STDOUT
                    return RoutingReason.WriteStatement;
                default:
                    return RoutingReason.Unrecognized;
            }

            token = lexer.Next();
        }
        else
        {
            if (token.Kind == SqlTokenKind.Identifier && SqlKeywords.Lookup(text.Slice(token.Start, token.Length)) == SqlKeyword.Binary)
            {
                token = lexer.Next();
            }

            // [schema.]table
            while (true)
            {
                if (token.Kind is not (SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier))
                {
                    return RoutingReason.Unrecognized;
                }

                token = lexer.Next();
                if (token.Kind != SqlTokenKind.Dot)
                {
                    break;
                }

                token = lexer.Next();
            }

            if (token.Kind == SqlTokenKind.LeftParen)
            {
                // (column, ...)
                do
                {
                    token = lexer.Next();
                    if (token.Kind is not (SqlTokenKind.Identifier or SqlTokenKind.QuotedIdentifier or SqlTokenKind.Other or SqlTokenKind.RightParen))
                    {
                        return RoutingReason.Unrecognized;
                    }
                }
                while (token.Kind != SqlTokenKind.RightParen);

                token = lexer.Next();
            }
        }

        if (token.Kind != SqlTokenKind.Identifier)
        {
            return RoutingReason.Unrecognized;
        }

        switch (SqlKeywords.Lookup(text.Slice(token.Start, token.Length)))
        {
            case SqlKeyword.From:
                return RoutingReason.WriteStatement;
            case SqlKeyword.To:
                token = lexer.Next();
                if (token.Kind == SqlTokenKind.Identifier && SqlKeywords.Lookup(text.Slice(token.Start, token.Length)) == SqlKeyword.Stdout)
                {
                    return SkipToEndOfStatement(ref lexer, out endOfText);
                }

                // TO 'file' or TO PROGRAM '...': writes a file on whichever server runs it.
                return token.Kind == SqlTokenKind.Error ? RoutingReason.Unrecognized : RoutingReason.WriteStatement;
            default:
                return RoutingReason.Unrecognized;
        }
    }

    /// <summary>
    /// Skips EXPLAIN's options and returns the first token of the explained statement; <paramref name="openedParenthesis"/> tells
    /// that the statement is parenthesised and its opening parenthesis is already read.
    /// </summary>
    private static SqlToken SkipExplainOptions(ref SqlLexer lexer, out bool openedParenthesis)
    {
        openedParenthesis = false;
        var text = lexer.Text;
        var token = lexer.Next();
        if (token.Kind == SqlTokenKind.Identifier)
        {
            var keyword = SqlKeywords.Lookup(text.Slice(token.Start, token.Length));
            if (keyword == SqlKeyword.Analyze)
            {
                token = lexer.Next();
                keyword = token.Kind == SqlTokenKind.Identifier ? SqlKeywords.Lookup(text.Slice(token.Start, token.Length)) : SqlKeyword.None;
            }

            if (keyword == SqlKeyword.Verbose)
            {
                token = lexer.Next();
            }

            return token;
        }

        if (token.Kind != SqlTokenKind.LeftParen)
        {
            return token;
        }

        var first = lexer.Next();
        if (first.Kind == SqlTokenKind.LeftParen
            || (first.Kind == SqlTokenKind.Identifier
                && SqlKeywords.Lookup(text.Slice(first.Start, first.Length)) is SqlKeyword.Select or SqlKeyword.Values or SqlKeyword.Table or SqlKeyword.With))
        {
            // EXPLAIN (SELECT ...): a parenthesised statement, not an option list.
            openedParenthesis = true;
            return first;
        }

        // (option [value], ...)
        var depth = 1;
        token = first;
        while (true)
        {
            switch (token.Kind)
            {
                case SqlTokenKind.LeftParen:
                    depth++;
                    break;
                case SqlTokenKind.RightParen:
                    if (--depth == 0)
                    {
                        return lexer.Next();
                    }

                    break;
                case SqlTokenKind.End or SqlTokenKind.Semicolon or SqlTokenKind.Error:
                    return new SqlToken(SqlTokenKind.Error, token.Start, 0);
            }

            token = lexer.Next();
        }
    }

    private static RoutingReason SkipToEndOfStatement(ref SqlLexer lexer, out bool endOfText)
    {
        endOfText = false;
        while (true)
        {
            switch (lexer.Next().Kind)
            {
                case SqlTokenKind.Semicolon:
                    return RoutingReason.Read;
                case SqlTokenKind.End:
                    endOfText = true;
                    return RoutingReason.Read;
                case SqlTokenKind.Error:
                    return RoutingReason.Unrecognized;
            }
        }
    }
}
