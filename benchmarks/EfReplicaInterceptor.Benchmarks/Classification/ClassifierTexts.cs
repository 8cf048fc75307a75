namespace EfReplicaInterceptor.Benchmarks.Classification;

/// <summary>
/// Command texts as EF Core 10 and Npgsql generate them, classified by <see cref="ClassifierBenchmarks"/>. The unit tests compile
/// this file too (by link) and check that the screen takes the fast path for the first two and declines the third, so the
/// benchmark measures what it says.
/// </summary>
public static class ClassifierTexts
{
    /// <summary><c>context.Blogs.Include(b => b.Posts).Where(...).OrderByDescending(...).Take(n)</c>.</summary>
    public static readonly string IncludeWhereOrderLimit = """
        SELECT b0."Id", b0."CreatedOn", b0."ExternalId", b0."Mood", b0."Name", b0."Rating", b0."Scores", b0."Status", b0."Tags", b0."Url", b0.xmin, p."Id", p."BlogId", p."Content", p."Kind", p."PublishedOn", p."Title", p."Views"
        FROM (
            SELECT b."Id", b."CreatedOn", b."ExternalId", b."Mood", b."Name", b."Rating", b."Scores", b."Status", b."Tags", b."Url", b.xmin
            FROM "Blogs" AS b
            WHERE b."Rating" > @minRating AND b."Name" ILIKE @term
            ORDER BY b."CreatedOn" DESC
            LIMIT @p
        ) AS b0
        LEFT JOIN "Posts" AS p ON b0."Id" = p."BlogId"
        ORDER BY b0."CreatedOn" DESC, b0."Id"
        """;

    /// <summary><c>context.Blogs.Include(b => b.Posts).ThenInclude(p => p.Comments).Where(...).OrderBy(...).Take(n)</c>.</summary>
    public static readonly string IncludeThenInclude = """
        SELECT b0."Id", b0."CreatedOn", b0."ExternalId", b0."Mood", b0."Name", b0."Rating", b0."Scores", b0."Status", b0."Tags", b0."Url", b0.xmin, b0."Address_City", b0."Address_Country", b0.c, s."Id", s."BlogId", s."Content", s."Kind", s."PublishedOn", s."Title", s."Views", s."Id0", s."At", s."PostId", s."Text"
        FROM (
            SELECT b."Id", b."CreatedOn", b."ExternalId", b."Mood", b."Name", b."Rating", b."Scores", b."Status", b."Tags", b."Url", b.xmin, b."Address_City", b."Address_Country", b."Settings" AS c
            FROM "Blogs" AS b
            WHERE b."Name" LIKE 'Hot%' AND b."Rating" >= @minRating AND b."Status" <> 'Archived'
            ORDER BY b."Name"
            LIMIT @p
        ) AS b0
        LEFT JOIN (
            SELECT p."Id", p."BlogId", p."Content", p."Kind", p."PublishedOn", p."Title", p."Views", c."Id" AS "Id0", c."At", c."PostId", c."Text"
            FROM "Posts" AS p
            LEFT JOIN "Comments" AS c ON p."Id" = c."PostId"
        ) AS s ON b0."Id" = s."BlogId"
        ORDER BY b0."Name", b0."Id", s."Id"
        """;

    /// <summary>
    /// <c>context.AuditEntries.Include(a => a.User).Where(a => a.Kind == AuditKind.Insert || a.Kind == AuditKind.Update ...)</c> with
    /// the enum stored as text: the constants <c>'Insert'</c> and <c>'Update'</c> are whole deciding words, so the screen declines
    /// the text and the full analysis decides (a read).
    /// </summary>
    public static readonly string AuditEntriesByKind = """
        SELECT a."Id", a."At", a."EntityId", a."EntityType", a."Kind", a."NewValues", a."OldValues", a."UserId", a."CorrelationId", a."Source", a."IpAddress", a."UserAgent", a."RequestPath", u."Id", u."DisplayName", u."Email", u."IsDeleted", u."UpdatedAt", u."TenantId", u."CreatedAt", u."LastLoginAt", u."Locale"
        FROM "AuditEntries" AS a
        INNER JOIN "Users" AS u ON a."UserId" = u."Id"
        WHERE a."EntityType" = @entityType AND a."Kind" IN ('Insert', 'Update') AND a."At" >= @since AND NOT (u."IsDeleted")
            AND u."TenantId" = @tenantId
        ORDER BY a."At" DESC, a."Id"
        LIMIT @p
        """;
}
