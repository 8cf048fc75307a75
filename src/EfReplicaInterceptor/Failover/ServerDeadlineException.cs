namespace EfReplicaInterceptor.Failover;

/// <summary>
/// A server did not answer within the library's own deadline, so the library abandoned the operation and closed its
/// connection. A <see cref="TimeoutException"/>: what a caller sees if every server a read could go to was silent.
/// </summary>
internal sealed class ServerDeadlineException(string message, Exception? inner = null) : TimeoutException(message, inner);
