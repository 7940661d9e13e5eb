/// A fixed-capacity heap buffer that a block of backup data lives in from the moment it is
/// read (straight from a pipe) until it has been compressed and, for the next block, served
/// as the deflate dictionary. A class so one block can be shared by two jobs without a copy.
///
/// Not Sendable by itself: ownership moves between the producer and a worker through
/// `BlockJob`, whose hand-over is ordered by the job queue's lock.
final class ByteBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 16)
    }

    deinit { base.deallocate() }

    var free: Int { capacity - count }
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    /// The unused tail, for a `read()` to fill.
    var spare: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base + count, count: free) }
}
