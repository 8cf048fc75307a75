namespace EfReplicaInterceptor.Failover;

/// <summary>The watch's place in its cluster's <see cref="DeadlineTimer"/> (the timer's to read and write, under its lock).</summary>
internal sealed partial class OperationWatch
{
    /// <summary>The watch before this one in the timer's list, or null at its head.</summary>
    internal OperationWatch? TimerPrevious;

    /// <summary>The watch after this one in the timer's list, or null at its tail.</summary>
    internal OperationWatch? TimerNext;

    /// <summary>When the timer looks at the watch next (a <see cref="TimeProvider.GetTimestamp"/> value).</summary>
    internal long TimerDue;

    /// <summary>The watch is in the timer's list.</summary>
    internal bool TimerLinked;

    /// <summary>The timer's look: the watch gives up, ends, or asks to be looked at again later.</summary>
    internal void OnDue() => Check();
}
