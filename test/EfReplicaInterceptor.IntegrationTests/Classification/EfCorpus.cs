// A copy of test/EfReplicaInterceptor.Tests/Classification/EfCorpus.cs (test projects cannot reference each other): keep them equal.

using System.Data;
using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.IntegrationTests.Classification;

/// <summary>One EF Core operation and how each command it sends must be classified.</summary>
/// <param name="Name">A short description, used as the test name.</param>
/// <param name="Expected">The classification of every command the operation sends (the last one repeats for the rest).</param>
/// <param name="Run">Runs the operation.</param>
/// <param name="Query">For LINQ queries, the query itself, whose <c>ToQueryString()</c> is also classified.</param>
public sealed record EfShape(string Name, SqlClassification[] Expected, Func<CorpusContext, Task> Run, Func<CorpusContext, IQueryable>? Query = null)
{
    public override string ToString() => Name;
}

/// <summary>The EF Core query and save shapes whose SQL (as EF Core 10 and Npgsql generate it) is part of the classifier corpus.</summary>
public static class EfCorpus
{
    private static readonly SqlClassification Read = SqlClassification.PlainRead;
    private static readonly SqlClassification Write = SqlClassification.NeedsPrimary(RoutingReason.WriteStatement);
    private static readonly SqlClassification Locking = SqlClassification.NeedsPrimary(RoutingReason.LockingRead);
    private static readonly SqlClassification Sequence = SqlClassification.NeedsPrimary(RoutingReason.WriteFunction);

    public static DbContextOptions<CorpusContext> Options(string connectionString, params IInterceptor[] interceptors) =>
        new DbContextOptionsBuilder<CorpusContext>()
            .UseNpgsql(connectionString, npgsql => npgsql.MapEnum<Mood>("mood"))
            .AddInterceptors(interceptors)
            .Options;

    public static IEnumerable<EfShape> Shapes()
    {
        var ids = new[] { 1, 2, 3 };
        var names = new List<string> { "a", "b" };
        var since = new DateTime(2024, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var term = "net";
        var minViews = 10;
        var version = 42u;

        // LINQ queries: ToQueryString() and the command actually sent.
        foreach (var (name, query) in Queries(ids, names, since, term, minViews, version))
        {
            yield return new EfShape(name, [Read], c => Enumerate(query(c)), query);
        }

        // Terminal operators that are not IQueryable.
        yield return ReadShape("Count", c => c.Blogs.CountAsync(b => b.Rating > 3));
        yield return ReadShape("LongCount", c => c.Posts.LongCountAsync());
        yield return ReadShape("Any", c => c.Posts.AnyAsync(p => p.Title.Contains(term)));
        yield return ReadShape("All", c => c.Posts.AllAsync(p => p.Views > minViews));
        yield return ReadShape("Contains entity key", c => c.Blogs.Select(b => b.Id).ContainsAsync(7));
        yield return ReadShape("First", c => c.Blogs.OrderBy(b => b.Id).FirstOrDefaultAsync());
        yield return ReadShape("Single by key", c => c.Blogs.SingleOrDefaultAsync(b => b.Id == minViews));
        yield return ReadShape("Find", c => c.Blogs.FindAsync(minViews).AsTask());
        yield return ReadShape("Max", c => c.Posts.MaxAsync(p => (int?)p.Views));
        yield return ReadShape("Min date", c => c.Posts.MinAsync(p => (DateTime?)p.PublishedOn));
        yield return ReadShape("Average", c => c.Blogs.AverageAsync(b => (decimal?)b.Rating));
        yield return ReadShape("Sum", c => c.Posts.Where(p => p.Kind == PostKind.Video).SumAsync(p => p.Views));
        yield return ReadShape("Last with order", c => c.Posts.OrderBy(p => p.PublishedOn).LastOrDefaultAsync());
        yield return ReadShape("ElementAt", c => c.Posts.OrderBy(p => p.Id).ElementAtOrDefaultAsync(3));
        yield return ReadShape("SqlQuery scalar", c => c.Database.SqlQuery<int>($"SELECT \"Views\" AS \"Value\" FROM \"Posts\" WHERE \"Views\" > {minViews}").ToListAsync());
        yield return ReadShape("SqlQueryRaw", c => c.Database.SqlQueryRaw<string>("SELECT \"Name\" AS \"Value\" FROM \"Blogs\" WHERE \"Name\" ILIKE {0}", "%for update%").ToListAsync());
        yield return ReadShape("Split query with Include", c => c.Blogs.AsSplitQuery().Include(b => b.Posts).ThenInclude(p => p.Comments).OrderBy(b => b.Id).ToListAsync());
        yield return ReadShape("Split query with filtered Include", c => c.Blogs.AsSplitQuery().Include(b => b.Posts.Where(p => p.Views > minViews).OrderBy(p => p.Id).Take(3)).ToListAsync());
        yield return ReadShape("Tracking query with Include then Load", async c =>
        {
            var blog = await c.Blogs.OrderBy(b => b.Id).FirstOrDefaultAsync();
            if (blog is not null)
            {
                await c.Entry(blog).Collection(b => b.Posts).LoadAsync();
            }
        });

        // Locking reads through raw SQL composed with LINQ.
        yield return new EfShape("FromSql FOR UPDATE", [Locking], c => c.Blogs.FromSqlRaw("SELECT *, xmin FROM \"Blogs\" FOR UPDATE").Where(b => b.Id > 0).ToListAsync());
        yield return new EfShape("FromSql FOR NO KEY UPDATE SKIP LOCKED", [Locking], c => c.Posts.FromSql($"SELECT * FROM \"Posts\" WHERE \"Views\" > {minViews} FOR NO KEY UPDATE SKIP LOCKED").ToListAsync());

        // Sequences.
        yield return new EfShape("SqlQuery nextval", [Sequence], c => c.Database.SqlQuery<long>($"SELECT nextval('comment_hilo') AS \"Value\"").ToListAsync());

        // Writes: SaveChanges, ExecuteUpdate, ExecuteDelete, ExecuteSql.
        yield return new EfShape("SaveChanges insert one", [Write], c =>
        {
            c.Blogs.Add(NewBlog("one"));
            return c.SaveChangesAsync();
        });
        yield return new EfShape("SaveChanges insert many (batched)", [Write], c =>
        {
            c.Blogs.AddRange(NewBlog("x"), NewBlog("y"), NewBlog("z"));
            c.Labels.Add(new Label { Name = "l" });
            return c.SaveChangesAsync();
        });
        yield return new EfShape("SaveChanges insert graph with many-to-many", [Write], c =>
        {
            var blog = NewBlog("graph");
            blog.Posts.Add(new Post { Title = "t", Labels = [new Label { Name = "n" }] });
            c.Blogs.Add(blog);
            return c.SaveChangesAsync();
        });
        yield return new EfShape("SaveChanges insert with HiLo", [Sequence, Write], c =>
        {
            c.Comments.Add(new Comment { PostId = 1, Text = "hello" });
            return c.SaveChangesAsync();
        });
        yield return new EfShape("SaveChanges update with concurrency token", [Write], c =>
        {
            var blog = NewBlog("u");
            blog.Id = 1;
            c.Blogs.Attach(blog);
            blog.Name = "changed";
            blog.Settings.Theme = "dark";
            return c.SaveChangesAsync();
        });
        yield return new EfShape("SaveChanges delete", [Write], c =>
        {
            c.Posts.Remove(new Post { Id = 1, Title = "t" });
            return c.SaveChangesAsync();
        });
        yield return new EfShape("SaveChanges mixed", [Write], c =>
        {
            c.Posts.Remove(new Post { Id = 2, Title = "t" });
            var label = new Label { Id = 3, Name = "n" };
            c.Labels.Attach(label);
            label.Name = "renamed";
            c.Labels.Add(new Label { Name = "new" });
            return c.SaveChangesAsync();
        });
        yield return new EfShape("ExecuteUpdate", [Write], c => c.Posts.Where(p => p.PublishedOn < since).ExecuteUpdateAsync(s => s.SetProperty(p => p.Views, p => p.Views + 1).SetProperty(p => p.Title, "old")));
        yield return new EfShape("ExecuteUpdate through navigation", [Write], c => c.Posts.Where(p => p.Blog.Status == BlogStatus.Archived).ExecuteUpdateAsync(s => s.SetProperty(p => p.Kind, PostKind.Link)));
        yield return new EfShape("ExecuteDelete", [Write], c => c.Comments.Where(x => x.At < since).ExecuteDeleteAsync());
        yield return new EfShape("ExecuteDelete tagged with join", [Write], c => c.Posts.TagWith("cleanup").Where(p => p.Blog.Name.StartsWith("tmp")).ExecuteDeleteAsync());
        yield return new EfShape("ExecuteSql update", [Write], c => c.Database.ExecuteSqlAsync($"UPDATE \"Blogs\" SET \"Rating\" = \"Rating\" + 1 WHERE \"Id\" = ANY ({ids})"));
        yield return new EfShape("ExecuteSqlRaw insert select", [Write], c => c.Database.ExecuteSqlRawAsync("INSERT INTO \"Labels\" (\"Name\") SELECT 'copy of ' || \"Name\" FROM \"Labels\" WHERE \"Id\" = {0}", minViews));
    }

    private static Task Enumerate(IQueryable query)
    {
        foreach (var row in query)
        {
            _ = row;
        }

        return Task.CompletedTask;
    }

    private static EfShape ReadShape(string name, Func<CorpusContext, Task> run) => new(name, [Read], run);

    private static Blog NewBlog(string name) => new() { Name = name, CreatedOn = new DateTime(2024, 5, 1, 0, 0, 0, DateTimeKind.Utc), Tags = ["a"], Settings = new BlogSettings { Editors = ["e"] } };

    private static IEnumerable<(string Name, Func<CorpusContext, IQueryable> Query)> Queries(int[] ids, List<string> names, DateTime since, string term, int minViews, uint version)
    {
        yield return ("Where OrderBy Take", c => c.Blogs.Where(b => b.Rating > 2 && b.Status == BlogStatus.Published).OrderByDescending(b => b.CreatedOn).Take(10));
        yield return ("Include", c => c.Blogs.Include(b => b.Posts));
        yield return ("Include ThenInclude", c => c.Blogs.Include(b => b.Posts).ThenInclude(p => p.Comments).Where(b => b.Name.StartsWith("Hot")).OrderBy(b => b.Name).Take(5));
        yield return ("Filtered Include with Take", c => c.Blogs.Include(b => b.Posts.Where(p => p.Views > minViews).OrderByDescending(p => p.Views).Take(3)));
        yield return ("Include many-to-many", c => c.Posts.Include(p => p.Labels).Where(p => p.Labels.Any(l => l.Name == "db")));
        yield return ("Include reference", c => c.Posts.Include(p => p.Blog).Where(p => p.Blog.Mood == Mood.Happy));
        yield return ("AsNoTracking Include paged", c => c.Blogs.AsNoTracking().Include(b => b.Posts).OrderBy(b => b.Id).Skip(20).Take(10));
        yield return ("AsNoTrackingWithIdentityResolution", c => c.Posts.AsNoTrackingWithIdentityResolution().Include(p => p.Blog));
        yield return ("Projection anonymous", c => c.Blogs.Select(b => new { b.Id, b.Name, PostCount = b.Posts.Count, Latest = b.Posts.OrderByDescending(p => p.PublishedOn).Select(p => p.Title).FirstOrDefault() }));
        yield return ("Projection nested collection", c => c.Blogs.Select(b => new { b.Name, Titles = b.Posts.Where(p => p.Kind == PostKind.Article).Select(p => p.Title).ToList() }));
        yield return ("GroupBy Count", c => c.Posts.GroupBy(p => p.BlogId).Select(g => new { g.Key, Count = g.Count(), Views = g.Sum(p => p.Views) }));
        yield return ("GroupBy Having", c => c.Posts.GroupBy(p => p.Kind).Where(g => g.Count() > 2).Select(g => new { g.Key, Max = g.Max(p => p.PublishedOn) }));
        yield return ("GroupBy string_agg", c => c.Posts.GroupBy(p => p.BlogId).Select(g => new { g.Key, Titles = string.Join(", ", g.Select(p => p.Title)) }));
        yield return ("Contains array parameter", c => c.Blogs.Where(b => ids.Contains(b.Id)));
        yield return ("Contains list parameter", c => c.Blogs.Where(b => names.Contains(b.Name)));
        yield return ("Array column Contains", c => c.Blogs.Where(b => b.Tags.Contains("efcore")));
        yield return ("Array column Any/Length", c => c.Blogs.Where(b => b.Tags.Length > 1 && b.Tags.Any(t => t.StartsWith("x"))));
        yield return ("Primitive collection Contains", c => c.Blogs.Where(b => b.Scores.Contains(5)));
        yield return ("Primitive collection query", c => c.Blogs.Where(b => b.Scores.Where(s => s > 3).Count() > 1).Select(b => b.Scores.Max()));
        yield return ("JSON owned property", c => c.Blogs.Where(b => b.Settings.Theme == "dark" && b.Settings.AllowComments));
        yield return ("JSON nested owned", c => c.Blogs.AsNoTracking().Where(b => b.Settings.Contact!.Email!.EndsWith("@example.com")).Select(b => b.Settings.Contact));
        yield return ("JSON collection", c => c.Blogs.Where(b => b.Settings.Editors.Contains("alice")));
        yield return ("Owned in table", c => c.Blogs.AsNoTracking().Where(b => b.Address!.City == "Oslo").Select(b => b.Address));
        yield return ("ILike", c => c.Blogs.Where(b => EF.Functions.ILike(b.Name, "%update%")));
        yield return ("Like with escape", c => c.Posts.Where(p => EF.Functions.Like(p.Title, "50\\%%", "\\")));
        yield return ("String functions", c => c.Posts.Where(p => p.Title.ToLower().Contains(term) || p.Title.Substring(1, 3) == "abc" || p.Title.Trim().Length > 4));
        yield return ("StartsWith EndsWith", c => c.Blogs.Where(b => b.Name.StartsWith(term) && b.Url!.EndsWith(".org")));
        yield return ("Regex", c => c.Posts.Where(p => System.Text.RegularExpressions.Regex.IsMatch(p.Title, "^[A-Z].*select")));
        yield return ("Dates", c => c.Posts.Where(p => p.PublishedOn > since && p.PublishedOn.Year == 2024 && p.PublishedOn.AddDays(7) < DateTime.UtcNow));
        yield return ("Enum as text and PG enum", c => c.Blogs.Where(b => b.Status != BlogStatus.Draft && b.Mood == Mood.Sad));
        yield return ("Guid and decimal", c => c.Blogs.Where(b => b.ExternalId != Guid.Empty && b.Rating >= 4.5m));
        yield return ("Conditional and coalesce", c => c.Blogs.Select(b => new { Label = b.Rating > 4 ? "top" : "other", Url = b.Url ?? "none" }));
        yield return ("Join", c => c.Posts.Join(c.Blogs, p => p.BlogId, b => b.Id, (p, b) => new { p.Title, b.Name }));
        yield return ("LeftJoin", c => c.Blogs.LeftJoin(c.Posts, b => b.Id, p => p.BlogId, (b, p) => new { b.Name, Title = p == null ? null : p.Title }));
        yield return ("GroupJoin SelectMany", c => c.Blogs.GroupJoin(c.Posts, b => b.Id, p => p.BlogId, (b, ps) => new { b, ps }).SelectMany(x => x.ps.DefaultIfEmpty(), (x, p) => new { x.b.Name, p!.Title }));
        yield return ("SelectMany collection", c => c.Blogs.SelectMany(b => b.Posts.Where(p => p.Views > minViews)));
        yield return ("Correlated subquery", c => c.Blogs.Where(b => b.Posts.Any(p => p.Comments.Count > 3)));
        yield return ("Union", c => c.Blogs.Where(b => b.Rating > 4).Select(b => b.Name).Union(c.Labels.Select(l => l.Name)));
        yield return ("Concat", c => c.Posts.Where(p => p.Kind == PostKind.Video).Concat(c.Posts.Where(p => p.Views > 1000)));
        yield return ("Intersect", c => c.Blogs.Select(b => b.Id).Intersect(c.Posts.Select(p => p.BlogId)));
        yield return ("Except", c => c.Blogs.Select(b => b.Id).Except(c.Posts.Select(p => p.BlogId)));
        yield return ("Distinct", c => c.Posts.Select(p => p.Kind).Distinct());
        yield return ("Distinct Count in projection", c => c.Blogs.Select(b => new { b.Id, Kinds = b.Posts.Select(p => p.Kind).Distinct().Count() }));
        yield return ("TagWith", c => c.Blogs.TagWith("dashboard: for update later; INSERT nothing").Where(b => b.Id > 5));
        yield return ("TagWith multi-line and caller", c => c.Posts.TagWith("first line\nsecond line: DELETE FROM nothing").TagWithCallSite().OrderBy(p => p.Id));
        yield return ("FromSqlRaw composed", c => c.Blogs.FromSqlRaw("SELECT *, xmin FROM \"Blogs\" WHERE \"Name\" <> 'update'").Where(b => b.Rating > 1).OrderBy(b => b.Name));
        yield return ("FromSql interpolated composed with Include", c => c.Blogs.FromSql($"SELECT *, xmin FROM \"Blogs\" WHERE \"Id\" > {minViews}").Include(b => b.Posts));
        yield return ("FromSql with CTE", c => c.Posts.FromSqlRaw("WITH recent AS (SELECT * FROM \"Posts\" WHERE \"PublishedOn\" > now() - interval '7 days') SELECT * FROM recent").Where(p => p.Views > 0));
        yield return ("Keyless view", c => c.BlogSummaries.Where(s => s.PostCount > 2).OrderBy(s => s.Name));
        yield return ("IgnoreAutoIncludes IgnoreQueryFilters", c => c.Blogs.IgnoreAutoIncludes().IgnoreQueryFilters().Where(b => b.Url != null));
        yield return ("Row number paging in projection", c => c.Blogs.Select(b => new { b.Name, Top = b.Posts.OrderByDescending(p => p.Views).Take(2).ToList() }));
        yield return ("Skip Take without order", c => c.Labels.Skip(minViews).Take(minViews));
        yield return ("Nested Any All", c => c.Blogs.Where(b => b.Posts.All(p => p.Labels.Any())));
        yield return ("Math", c => c.Posts.Select(p => new { R = Math.Round(p.Views / 3.0, 2), A = Math.Abs(p.Views - 10), P = Math.Pow(p.Views, 2) }));
        yield return ("Random and NewGuid", c => c.Posts.OrderBy(p => EF.Functions.Random()).Select(p => new { p.Id, G = Guid.NewGuid() }));
        yield return ("String concat and format", c => c.Blogs.Select(b => b.Name + " (" + b.Id + ")"));
        yield return ("Null checks", c => c.Blogs.Where(b => b.Url == null || b.Address == null));
        yield return ("Cast and Convert", c => c.Posts.Where(p => p.Views.ToString() == "7" || (double)p.Views > 2.5));
        yield return ("Array overlap", c => c.Blogs.Where(b => b.Tags.Any(t => names.Contains(t))));
        yield return ("Array index and concat", c => c.Blogs.Where(b => b.Tags[0] == "first").Select(b => new { b.Id, Count = b.Tags.Length }));
        yield return ("JSON ordering and projection", c => c.Blogs.AsNoTracking().OrderBy(b => b.Settings.Theme).Select(b => new { b.Id, b.Settings.Theme, b.Settings.Editors }));
        yield return ("Enum HasFlag-like comparisons", c => c.Posts.Where(p => p.Kind >= PostKind.Link));
        yield return ("Large OR chain", c => c.Posts.Where(p => p.Title == "a" || p.Title == "b" || p.Title == "c" || p.Title == "for" || p.Title == "into"));
        yield return ("Take in subquery with FirstOrDefault", c => c.Posts.Select(p => new { p.Title, First = p.Comments.OrderBy(x => x.At).Select(x => x.Text).FirstOrDefault() }));
        yield return ("Aggregate over navigation", c => c.Blogs.Select(b => new { b.Name, Avg = b.Posts.Average(p => (double?)p.Views), Max = b.Posts.Max(p => (DateTime?)p.PublishedOn) }));
        yield return ("Where on concurrency token", c => c.Blogs.Where(b => b.Version == version));
        yield return ("Collation", c => c.Blogs.Where(b => EF.Functions.Collate(b.Name, "C") == "x"));
        yield return ("Full text search", c => c.Posts.Where(p => EF.Functions.ToTsVector("english", p.Title).Matches(EF.Functions.PlainToTsQuery("english", term))));
        yield return ("Distance and date_trunc", c => c.Posts.GroupBy(p => new DateTime(p.PublishedOn.Year, p.PublishedOn.Month, 1, 0, 0, 0, DateTimeKind.Utc)).Select(g => new { g.Key, Count = g.Count() }));
        yield return ("Contains on navigation with Take", c => c.Blogs.Where(b => b.Posts.OrderBy(p => p.Id).Take(5).Select(p => p.Title).Contains("x")));
    }
}

/// <summary>
/// Records the text of every command EF Core sends. With <c>suppress</c>, nothing reaches a server: opening the connection and
/// every execution are suppressed (readers are empty), so SQL can be captured from a model with no database behind it.
/// </summary>
public sealed class CommandCapture(bool suppress) : DbCommandInterceptor, IDbConnectionInterceptor, IDbTransactionInterceptor
{
    private readonly List<CapturedCommand> _commands = [];

    public IReadOnlyList<CapturedCommand> Commands => _commands;

    public void Clear() => _commands.Clear();

    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result) =>
        Capture(command, suppress ? InterceptionResult<DbDataReader>.SuppressWithResult(new DataTable().CreateDataReader()) : result);

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(ReaderExecuting(command, eventData, result));

    public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result) =>
        Capture(command, suppress ? InterceptionResult<int>.SuppressWithResult(1) : result);

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(NonQueryExecuting(command, eventData, result));

    public override InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result) =>
        Capture(command, suppress ? InterceptionResult<object>.SuppressWithResult(1L) : result);

    public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(ScalarExecuting(command, eventData, result));

    public override void CommandFailed(DbCommand command, CommandErrorEventData eventData) => Fail(command, eventData.Exception);

    public override Task CommandFailedAsync(DbCommand command, CommandErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        Fail(command, eventData.Exception);
        return Task.CompletedTask;
    }

    public InterceptionResult ConnectionOpening(DbConnection connection, ConnectionEventData eventData, InterceptionResult result) =>
        suppress ? InterceptionResult.Suppress() : result;

    public ValueTask<InterceptionResult> ConnectionOpeningAsync(DbConnection connection, ConnectionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(ConnectionOpening(connection, eventData, result));

    public InterceptionResult ConnectionClosing(DbConnection connection, ConnectionEventData eventData, InterceptionResult result) =>
        suppress ? InterceptionResult.Suppress() : result;

    public ValueTask<InterceptionResult> ConnectionClosingAsync(DbConnection connection, ConnectionEventData eventData, InterceptionResult result) =>
        ValueTask.FromResult(ConnectionClosing(connection, eventData, result));

    public InterceptionResult<DbTransaction> TransactionStarting(DbConnection connection, TransactionStartingEventData eventData, InterceptionResult<DbTransaction> result) =>
        suppress ? InterceptionResult<DbTransaction>.SuppressWithResult(new NoTransaction(connection)) : result;

    public ValueTask<InterceptionResult<DbTransaction>> TransactionStartingAsync(DbConnection connection, TransactionStartingEventData eventData, InterceptionResult<DbTransaction> result, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(TransactionStarting(connection, eventData, result));

    private T Capture<T>(DbCommand command, T result)
    {
        _commands.Add(new CapturedCommand(command.CommandText));
        return result;
    }

    private void Fail(DbCommand command, Exception exception)
    {
        var index = _commands.FindLastIndex(c => c.Text == command.CommandText);
        if (index >= 0)
        {
            _commands[index] = _commands[index] with { Error = exception };
        }
    }

    private sealed class NoTransaction(DbConnection connection) : DbTransaction
    {
        public override IsolationLevel IsolationLevel => IsolationLevel.ReadCommitted;

        protected override DbConnection DbConnection => connection;

        public override void Commit()
        {
        }

        public override void Rollback()
        {
        }
    }
}

/// <summary>A command EF Core sent, and the error it failed with, if any.</summary>
public sealed record CapturedCommand(string Text, Exception? Error = null);
