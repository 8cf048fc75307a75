namespace EfReplicaInterceptor.Samples.Shop;

/// <summary>A PostgreSQL enum (<c>mood</c>), mapped on the primary's and the replicas' data sources alike (<c>MapEnum&lt;Mood&gt;("mood")</c>).</summary>
public enum Mood
{
    Happy,
    Sad,
    Meh,
}

/// <summary>A row of <c>people</c>: what the routing tests and the demo read and write.</summary>
public sealed class Person
{
    public int Id { get; set; }

    public string Name { get; set; } = "";

    public Mood Mood { get; set; }

    /// <summary>Column default <c>inet_server_port()</c>: the port of the server that ran the INSERT, read back by RETURNING.</summary>
    public int WrittenOnPort { get; set; }

    /// <summary>Column default <c>pg_is_in_recovery()</c>: whether the server that ran the INSERT was a standby.</summary>
    public bool? WrittenInRecovery { get; set; }

    /// <summary>Set by an UPDATE to <c>inet_server_port()</c> of the server that ran it.</summary>
    public int? TouchedOnPort { get; set; }

    /// <summary>Set by an UPDATE to <c>pg_is_in_recovery()</c> of the server that ran it.</summary>
    public bool? TouchedInRecovery { get; set; }
}

/// <summary>
/// A row a writer inserts on the primary on a schedule (the freshness tests' <c>TickWriter</c>, the demo's background writer
/// while replay is paused); the server stamps it, so a reader can tell how stale what it read was.
/// </summary>
public sealed class Tick
{
    public long Id { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>A write with a client-generated key, so its presence can be checked after a failover. The key is unique.</summary>
public sealed class Order
{
    public Guid Id { get; set; }

    public int Writer { get; set; }
}

/// <summary>
/// A row the demo's failover step writes with a client-generated key (<see cref="Id"/>), so each write can be looked up on
/// the promoted server afterwards. The table has no unique constraint on purpose (unlike <see cref="Order"/>): a write
/// applied twice shows as a duplicate row instead of as an error.
/// </summary>
public sealed class FailoverOrder
{
    public Guid Id { get; set; }

    /// <summary>The writer's attempt number.</summary>
    public int Attempt { get; set; }

    /// <summary>Column default <c>inet_server_port()</c>: the port of the server that ran the INSERT, read back by RETURNING.</summary>
    public int WrittenOnPort { get; set; }

    /// <summary>Column default <c>pg_is_in_recovery()</c>: whether the server that ran the INSERT was a standby.</summary>
    public bool? WrittenInRecovery { get; set; }
}

/// <summary>A catalogue row: what the query benchmarks read (<see cref="ShopDbContext.ProductCount"/> seeded).</summary>
public sealed class Product
{
    public int Id { get; set; }

    public string Name { get; set; } = "";

    public decimal Price { get; set; }

    public int Stock { get; set; }
}

/// <summary>A purchase of a product: what the SaveChanges benchmarks insert (server-generated key, read back by RETURNING).</summary>
public sealed class Purchase
{
    public long Id { get; set; }

    public int ProductId { get; set; }

    public int Quantity { get; set; }

    public string Customer { get; set; } = "";
}

/// <summary>
/// A row of <c>items</c>, the load run's table. Seeded rows have fixed keys (<see cref="ShopDbContext.SeededItemId"/>);
/// rows written during the run get client-generated keys.
/// </summary>
public sealed class Item
{
    public Guid Id { get; set; }

    public int Worker { get; set; }

    public string Payload { get; set; } = string.Empty;
}

/// <summary>Where a command ran, as the server that ran it reports it.</summary>
public sealed record ServerSide(int Port, bool InRecovery);
