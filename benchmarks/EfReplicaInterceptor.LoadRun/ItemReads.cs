using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.LoadRun;

/// <summary>What a read returns: the row, and the port of the server that ran the query, as that server reports it.</summary>
internal sealed record ItemRead(Guid Id, string Payload, string ServerPort);

/// <summary>The load run's read on the shared model's <c>items</c> table.</summary>
internal static class ItemReads
{
    /// <summary>The read every variant runs: one row by key, with the port of the server that answered.</summary>
    public static Task<ItemRead?> ReadAsync(this ShopContext db, Guid id, CancellationToken ct) =>
        db.Items.AsNoTracking()
            .Where(item => item.Id == id)
            .Select(item => new ItemRead(item.Id, item.Payload, ShopDbContext.CurrentSetting("port")))
            .FirstOrDefaultAsync(ct);
}
