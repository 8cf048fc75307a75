using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>The primary's insert position, as the end of the last record a replica can report having replayed.</summary>
public sealed class WalInsertPositionTests
{
    private const int Block = 8192;
    private const long Segment = 16L * 1024 * 1024;

    [TestCase(0x0100_0128UL, 0x0100_0128UL, TestName = "inside a page: unchanged")]
    [TestCase(0x0100_2018UL, 0x0100_2000UL, TestName = "right after a page header: the page boundary")]
    [TestCase(0x0100_0028UL, 0x0100_0000UL, TestName = "right after a segment's long header: the segment boundary")]
    [TestCase(0x0100_0018UL, 0x0100_0018UL, TestName = "24 bytes into a segment is inside its long header's page: unchanged")]
    [TestCase(0x0100_2000UL, 0x0100_2000UL, TestName = "a page boundary itself: unchanged")]
    public void Positions_after_a_page_header_move_back_to_the_boundary(ulong insert, ulong expected)
        => Assert.That(WalInsertPosition.EndOfLastRecord(insert, Block, Segment), Is.EqualTo(expected));
}
