// A copy of test/EfReplicaInterceptor.Tests/Classification/CorpusModel.cs (test projects cannot reference each other): keep them equal.

using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Classification;

// A small blogging model covering the mappings whose SQL the classifier must read: owned types in the table and as JSON,
// collections, many-to-many, enums as int, as text and as a PostgreSQL enum, arrays and primitive collections, a keyless view,
// a HiLo sequence and an xmin concurrency token.
public enum BlogStatus
{
    Draft,
    Published,
    Archived,
}

public enum PostKind
{
    Article,
    Link,
    Video,
}

public enum Mood
{
    Happy,
    Sad,
}

public sealed class Blog
{
    public int Id { get; set; }

    public required string Name { get; set; }

    public string? Url { get; set; }

    public BlogStatus Status { get; set; }

    public Mood Mood { get; set; }

    public string[] Tags { get; set; } = [];

    public List<int> Scores { get; set; } = [];

    public decimal Rating { get; set; }

    public DateTime CreatedOn { get; set; }

    public Guid ExternalId { get; set; }

    public uint Version { get; set; }

    public BlogSettings Settings { get; set; } = new();

    public Address? Address { get; set; }

    public List<Post> Posts { get; set; } = [];
}

public sealed class BlogSettings
{
    public string Theme { get; set; } = "light";

    public bool AllowComments { get; set; }

    public List<string> Editors { get; set; } = [];

    public Contact? Contact { get; set; }
}

public sealed class Contact
{
    public string? Email { get; set; }

    public string? Phone { get; set; }
}

public sealed class Address
{
    public string? City { get; set; }

    public string? Country { get; set; }
}

public sealed class Post
{
    public int Id { get; set; }

    public int BlogId { get; set; }

    public Blog Blog { get; set; } = null!;

    public required string Title { get; set; }

    public string? Content { get; set; }

    public DateTime PublishedOn { get; set; }

    public int Views { get; set; }

    public PostKind Kind { get; set; }

    public List<Comment> Comments { get; set; } = [];

    public List<Label> Labels { get; set; } = [];
}

public sealed class Comment
{
    public long Id { get; set; }

    public int PostId { get; set; }

    public Post Post { get; set; } = null!;

    public required string Text { get; set; }

    public DateTime At { get; set; }
}

public sealed class Label
{
    public int Id { get; set; }

    public required string Name { get; set; }

    public List<Post> Posts { get; set; } = [];
}

public sealed class BlogSummary
{
    public int BlogId { get; set; }

    public string? Name { get; set; }

    public int PostCount { get; set; }
}

public sealed class CorpusContext(DbContextOptions<CorpusContext> options) : DbContext(options)
{
    public DbSet<Blog> Blogs => Set<Blog>();

    public DbSet<Post> Posts => Set<Post>();

    public DbSet<Comment> Comments => Set<Comment>();

    public DbSet<Label> Labels => Set<Label>();

    public DbSet<BlogSummary> BlogSummaries => Set<BlogSummary>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Blog>(blog =>
        {
            blog.Property(b => b.Status).HasConversion<string>();
            blog.Property(b => b.Version).IsRowVersion();
            blog.OwnsOne(b => b.Settings, settings =>
            {
                settings.ToJson();
                settings.OwnsOne(s => s.Contact);
            });
            blog.OwnsOne(b => b.Address);
            blog.HasIndex(b => b.Name);
        });
        modelBuilder.Entity<Comment>().Property(c => c.Id).UseHiLo("comment_hilo");
        modelBuilder.Entity<Post>().HasMany(p => p.Labels).WithMany(l => l.Posts);
        modelBuilder.Entity<BlogSummary>().HasNoKey().ToView("blog_summaries");
    }
}
