using EfReplicaInterceptor.Routing;

namespace Microsoft.EntityFrameworkCore;

/// <summary>Per-query routing choices.</summary>
public static class EfReplicaQueryableExtensions
{
    /// <summary>
    /// Sends this query to the primary, for example a read that must see a write made moments ago by another request.
    /// It is a query tag (<c>-- EfReplica:UsePrimary</c>), so it composes with other tags and survives query caching.
    /// </summary>
    public static IQueryable<T> UsePrimary<T>(this IQueryable<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return source.TagWith(QueryTags.UsePrimary);
    }

    /// <summary>
    /// Lets this query run on a replica only if that replica's data is at most <paramref name="maxStaleness"/> behind the
    /// primary (as the replica monitor last measured it, plus the time since); otherwise it runs on the primary
    /// (reason <c>replica-lagging</c>). Tighter than the cluster's <c>MaxReplicaLag</c>, for reads that need fresher data.
    /// </summary>
    public static IQueryable<T> WithMaxStaleness<T>(this IQueryable<T> source, TimeSpan maxStaleness)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxStaleness, TimeSpan.Zero);
        return source.TagWith(QueryTags.MaxStaleness(maxStaleness));
    }
}
