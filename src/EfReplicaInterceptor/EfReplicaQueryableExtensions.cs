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
        return source.TagWith(PrimaryTag.Text);
    }
}
