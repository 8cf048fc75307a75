namespace EfReplicaInterceptor.Tests.Classification;

public sealed class SqlLexerTests
{
    private static List<string> Tokens(string text)
    {
        var lexer = new SqlLexer(text);
        var tokens = new List<string>();
        while (true)
        {
            var token = lexer.Next();
            if (token.Kind == SqlTokenKind.End)
            {
                return tokens;
            }

            tokens.Add(token.Kind == SqlTokenKind.Error ? "Error" : $"{token.Kind}:{text.Substring(token.Start, token.Length)}");
            if (token.Kind == SqlTokenKind.Error)
            {
                return tokens;
            }
        }
    }

    [TestCase("SELECT a1$b_c FROM t", "Identifier:SELECT|Identifier:a1$b_c|Identifier:FROM|Identifier:t")]
    [TestCase("'it''s' 'x'", "String:'it''s'|String:'x'")]
    [TestCase("E'\\'' e'a\\\\' E'x''y'", "String:E'\\''|String:e'a\\\\'|String:E'x''y'")]
    [TestCase("somee'x'", "Identifier:somee|String:'x'")]
    [TestCase("U&'\\0041' u&'x''y'", "String:U&'\\0041'|String:u&'x''y'")]
    [TestCase("N'n' B'101' X'ff'", "Identifier:N|String:'n'|Identifier:B|String:'101'|Identifier:X|String:'ff'")]
    [TestCase("\"a\"\"b\" \"UPDATE\"", "QuotedIdentifier:a\"\"b|QuotedIdentifier:UPDATE")]
    [TestCase("$$x$$ $tag$ $x$ $tag$ $_1$y$_1$", "String:$$x$$|String:$tag$ $x$ $tag$|String:$_1$y$_1$")]
    [TestCase("$1 $23::int", "Parameter:$1|Parameter:$23|Other::|Other::|Identifier:int")]
    [TestCase("a$$b$$", "Identifier:a$$b$$")]
    [TestCase("1 1.5 .5 5. 1e10 1.5E-3 1..2", "Number:1|Number:1.5|Number:.5|Number:5.|Number:1e10|Number:1.5E-3|Number:1|Dot:.|Number:.2")]
    [TestCase("1for", "Number:1|Identifier:for")]
    [TestCase("a -- c\nb /* x /* y */ z */ c", "Identifier:a|Identifier:b|Identifier:c")]
    [TestCase("a --c\rb", "Identifier:a|Identifier:b")]
    [TestCase("2*/*c*/3 +-- c\n4", "Number:2|Other:*|Number:3|Other:+|Number:4")]
    [TestCase("t.c @p0 :n", "Identifier:t|Dot:.|Identifier:c|Other:@|Identifier:p0|Other::|Identifier:n")]
    [TestCase("(a);[b],", "LeftParen:(|Identifier:a|RightParen:)|Semicolon:;|Other:[|Identifier:b|Other:]|Other:,")]
    [TestCase("\u00fcber \u00e9t\u00e9", "Identifier:\u00fcber|Identifier:\u00e9t\u00e9")]
    [TestCase("U&\"d\\0061ta\"", "Error")]
    [TestCase("$a-", "Error")]
    [TestCase("a \\ b", "Identifier:a|Error")]
    [TestCase("{", "Error")]
    [TestCase("\"\"", "Error")]
    public void Tokens_follow_PostgreSQLs_lexer(string text, string expected)
    {
        Assert.That(string.Join('|', Tokens(text)), Is.EqualTo(expected));
    }

    [Test]
    public void After_an_error_the_lexer_keeps_reporting_it()
    {
        var lexer = new SqlLexer("SELECT 'x");
        SqlTokenKind[] kinds = [lexer.Next().Kind, lexer.Next().Kind, lexer.Next().Kind];
        Assert.That(kinds, Is.EqualTo(new[] { SqlTokenKind.Identifier, SqlTokenKind.Error, SqlTokenKind.Error }));
    }
}
