namespace EfReplicaInterceptor.Tests.Documentation;

/// <summary>The link checker's reader of markdown: which links it sees, and the anchors GitHub gives headings.</summary>
[Category("Architecture")]
public sealed class MarkdownLinksTests
{
    // Slugs as GitHub renders them (checked against the anchors of this repository's pages on github.com's rules).
    [TestCase("Known limits", "known-limits")]
    [TestCase("ASP.NET Core: one line per application", "aspnet-core-one-line-per-application")]
    [TestCase("Where the library and Npgsql's `IsTransient` disagree", "where-the-library-and-npgsqls-istransient-disagree")]
    [TestCase("Multi-host primary, split brain and fencing", "multi-host-primary-split-brain-and-fencing")]
    [TestCase("Results (2026-11-21)", "results-2026-11-21")]
    [TestCase("The `efreplica.split_brain` gauge", "the-efreplicasplit_brain-gauge")]
    [TestCase("A [linked](other.md) heading", "a-linked-heading")]
    [TestCase("Two  spaces", "two--spaces")]
    [TestCase("Überblick & Ausblick", "überblick--ausblick")]
    public void A_heading_has_the_anchor_GitHub_gives_it(string heading, string slug) =>
        Assert.That(MarkdownLinks.Slug(heading), Is.EqualTo(slug));

    [Test]
    public void Repeated_headings_are_numbered_and_headings_in_code_blocks_are_not_headings()
    {
        const string markdown = "# Title\n\n## Limits\n\n```sh\n# a comment, not a heading\n```\n\n## Limits\n\n<a name=\"old-name\"></a>\n";

        Assert.That(MarkdownLinks.Anchors(markdown), Is.EquivalentTo(new[] { "title", "limits", "limits-1", "old-name" }));
    }

    [Test]
    public void Links_are_read_from_prose_and_tables_but_not_from_code()
    {
        const string markdown = """
            See [the docs](docs/a.md#part) and ![a figure](<img/b c.svg> "title").
            | cell | [x](../c.md) |
            `[not a link](code.md)` and ``[neither](code2.md)``
            ~~~
            [inside a fence](fence.md)
            ~~~
            [ref]: docs/d.md
            """;

        var links = MarkdownLinks.Links(markdown);

        Assert.That(links, Is.EqualTo(new[]
        {
            new MarkdownLink(1, "docs/a.md#part"),
            new MarkdownLink(1, "img/b c.svg"),
            new MarkdownLink(2, "../c.md"),
            new MarkdownLink(7, "docs/d.md"),
        }));
    }
}
