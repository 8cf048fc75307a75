using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace EfReplicaInterceptor.Tests.Documentation;

/// <summary>A link found in a markdown file: its 1-based line and its target as written.</summary>
internal sealed record MarkdownLink(int Line, string Target);

/// <summary>
/// The small part of GitHub-flavoured markdown that the documentation's links depend on: inline links and images
/// (<c>[text](target "title")</c>, <c>&lt;target&gt;</c> too), reference definitions (<c>[name]: target</c>), ATX headings
/// (<c># Title</c>) and their anchors as GitHub makes them, and <c>&lt;a name|id="..."&gt;</c> anchors. Fenced code blocks and
/// inline code spans are skipped, as GitHub renders no link there. Setext headings (underlined with <c>===</c>) are not
/// read: the documentation does not use them.
/// </summary>
internal static partial class MarkdownLinks
{
    /// <summary>The links of a markdown text, outside code blocks and code spans, in order.</summary>
    public static IReadOnlyList<MarkdownLink> Links(string markdown)
    {
        var links = new List<MarkdownLink>();
        foreach (var (number, line) in ProseLines(markdown))
        {
            var text = CodeSpan().Replace(line, match => new string(' ', match.Length));
            var definition = ReferenceDefinition().Match(text);
            if (definition.Success)
            {
                links.Add(new MarkdownLink(number, Unwrap(definition.Groups["target"].Value)));
                continue;
            }

            foreach (Match link in InlineLink().Matches(text))
            {
                links.Add(new MarkdownLink(number, Unwrap(link.Groups["target"].Value)));
            }
        }

        return links;
    }

    /// <summary>The anchors a markdown text offers: each heading's GitHub slug (repeats numbered -1, -2, ...) and HTML anchors.</summary>
    public static IReadOnlySet<string> Anchors(string markdown)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (_, line) in ProseLines(markdown))
        {
            foreach (Match html in HtmlAnchor().Matches(line))
            {
                anchors.Add(html.Groups["name"].Value);
            }

            var heading = Heading().Match(line);
            if (!heading.Success)
            {
                continue;
            }

            var slug = Slug(heading.Groups["text"].Value);
            if (seen.TryGetValue(slug, out var count))
            {
                seen[slug] = count + 1;
                anchors.Add(string.Create(CultureInfo.InvariantCulture, $"{slug}-{count}"));
            }
            else
            {
                seen[slug] = 1;
                anchors.Add(slug);
            }
        }

        return anchors;
    }

    /// <summary>
    /// GitHub's anchor for a heading: the rendered text (code spans, links and images reduced to their text), lower-cased,
    /// every character that is not a letter, mark, digit, connector (<c>_</c>), space or hyphen removed, each space a hyphen.
    /// </summary>
    public static string Slug(string headingText)
    {
        var text = InlineLinkOrImage().Replace(headingText, match => match.Groups["text"].Value);
        text = text.Replace("`", string.Empty, StringComparison.Ordinal);
        var slug = new StringBuilder(text.Length);
        foreach (var character in text.Trim().ToLowerInvariant())
        {
            var category = char.GetUnicodeCategory(character);
            if (character is ' ')
            {
                slug.Append('-');
            }
            else if (character is '-' || char.IsLetterOrDigit(character) || category is UnicodeCategory.ConnectorPunctuation
                     or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                     or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber)
            {
                slug.Append(character);
            }
        }

        return slug.ToString();
    }

    /// <summary>The lines outside fenced code blocks, with their 1-based numbers.</summary>
    private static IEnumerable<(int Number, string Line)> ProseLines(string markdown)
    {
        var lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        string? fence = null;
        for (var i = 0; i < lines.Length; i++)
        {
            var opening = Fence().Match(lines[i]);
            if (fence is null && opening.Success)
            {
                fence = opening.Groups["fence"].Value;
            }
            else if (fence is not null)
            {
                var trimmed = lines[i].Trim();
                if (trimmed.Length >= fence.Length && trimmed.All(c => c == fence[0]))
                {
                    fence = null;
                }
            }
            else
            {
                yield return (i + 1, lines[i]);
            }
        }
    }

    private static string Unwrap(string target) =>
        target.StartsWith('<') && target.EndsWith('>') ? target[1..^1] : target;

    [GeneratedRegex(@"^ {0,3}(?<fence>`{3,}|~{3,})")]
    private static partial Regex Fence();

    [GeneratedRegex(@"(`+)(?:(?!\1).)+?\1")]
    private static partial Regex CodeSpan();

    [GeneratedRegex(@"^ {0,3}\[(?!\^)[^\]]+\]:\s*(?<target><[^>]*>|\S+)")]
    private static partial Regex ReferenceDefinition();

    [GeneratedRegex(@"!?\[(?<text>(?:[^\[\]]|\[[^\]]*\])*)\]\((?<target><[^>]*>|[^)\s]*)(?:\s+""[^""]*"")?\)")]
    private static partial Regex InlineLink();

    [GeneratedRegex(@"!?\[(?<text>(?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)")]
    private static partial Regex InlineLinkOrImage();

    [GeneratedRegex(@"^ {0,3}#{1,6}[ \t]+(?<text>.*?)(?:[ \t]+#+)?[ \t]*$")]
    private static partial Regex Heading();

    [GeneratedRegex(@"<a\s+(?:name|id)=""(?<name>[^""]+)""", RegexOptions.IgnoreCase)]
    private static partial Regex HtmlAnchor();
}
