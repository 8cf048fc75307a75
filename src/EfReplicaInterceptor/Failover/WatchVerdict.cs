namespace EfReplicaInterceptor.Failover;

/// <summary>Why an <see cref="OperationWatch"/> gave up on its operation.</summary>
internal enum WatchVerdict : byte
{
    /// <summary>It has not (the operation ended first, or is still running within its deadline).</summary>
    None,

    /// <summary>The server showed no sign of life for the whole deadline (or the operation outlived its hard stop).</summary>
    Unresponsive,

    /// <summary>The caller's <see cref="CancellationToken"/> was cancelled and the operation did not end within the grace.</summary>
    Cancelled,
}
