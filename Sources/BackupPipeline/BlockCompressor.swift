import CZlib
import Foundation

/// One block of a backup on its way through the compressor: the producer fills `input`
/// (and names the previous block as `dictionary`), a worker deflates it into `output`.
///
/// `@unchecked Sendable`: the producer writes the inputs before `JobQueue.push`, a worker
/// writes the results before `JobQueue.complete`, and the producer reads them only after
/// seeing `done` under the same lock — the queue's `NSCondition` orders every hand-over.
final class BlockJob: @unchecked Sendable {
    let input: ByteBuffer
    /// The block before this one: its last 32 KiB prime the deflate window, so the split into
    /// blocks costs almost nothing in ratio.
    let dictionary: ByteBuffer?
    /// The last block ends the deflate stream (Z_FINISH); the others end on a byte boundary
    /// (Z_SYNC_FLUSH) so they can be concatenated.
    let isLast: Bool
    /// A recycled buffer offered by the producer; the worker replaces it if too small.
    var output: ByteBuffer?
    var crc: UInt = 0
    var failure: String?
    var done = false

    init(input: ByteBuffer, dictionary: ByteBuffer?, isLast: Bool, output: ByteBuffer?) {
        self.input = input
        self.dictionary = dictionary
        self.isLast = isLast
        self.output = output
    }
}

/// The hand-over between the producer (the thread reading the source) and the compression
/// workers: a FIFO of jobs and a "done" signal, all under one `NSCondition`.
///
/// `@unchecked Sendable`: every field is read and written only while `condition` is locked.
final class JobQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [BlockJob] = []
    private var head = 0
    private var closed = false

    func push(_ job: BlockJob) {
        condition.lock()
        pending.append(job)
        condition.broadcast()
        condition.unlock()
    }

    /// The next job to compress, waiting for one; nil once the queue is closed.
    func pop() -> BlockJob? {
        condition.lock()
        defer { condition.unlock() }
        while !closed && head == pending.count { condition.wait() }
        if closed { return nil }
        let job = pending[head]
        head += 1
        if head > 64 && head * 2 > pending.count {
            pending.removeFirst(head)
            head = 0
        }
        return job
    }

    func complete(_ job: BlockJob) {
        condition.lock()
        job.done = true
        condition.broadcast()
        condition.unlock()
    }

    func isDone(_ job: BlockJob) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return job.done
    }

    func waitDone(_ job: BlockJob) {
        condition.lock()
        while !job.done { condition.wait() }
        condition.unlock()
    }

    /// Stops the workers: they finish the job in hand and exit; queued jobs are dropped.
    func close() {
        condition.lock()
        closed = true
        pending.removeAll()
        head = 0
        condition.broadcast()
        condition.unlock()
    }
}

/// A raw-deflate stream owned by one worker thread (the z_stream never leaves it).
final class BlockDeflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let initError: Int32

    init(level: Int32) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // windowBits -15: raw deflate; the gzip header and trailer are written by the writer.
        initError = backstop_deflateInit2(stream, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY)
    }

    deinit {
        if initError == Z_OK { deflateEnd(stream) }
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Deflates `job.input` into `job.output` and computes its CRC-32.
    func compress(_ job: BlockJob) {
        guard initError == Z_OK else {
            job.failure = "deflateInit2 failed (zlib error \(initError))"
            return
        }
        let input = job.input
        job.crc = crc32(0, input.base.assumingMemoryBound(to: Bytef.self), uInt(input.count))
        deflateReset(stream)
        if let dictionary = job.dictionary, dictionary.count > 0 {
            let n = min(dictionary.count, 32 * 1024)
            let rc = deflateSetDictionary(stream, (dictionary.base + (dictionary.count - n)).assumingMemoryBound(to: Bytef.self), uInt(n))
            guard rc == Z_OK else {
                job.failure = "deflateSetDictionary failed (zlib error \(rc))"
                return
            }
        }
        let bound = Int(deflateBound(stream, uLong(input.count))) + 64
        var output = job.output.flatMap { $0.capacity >= bound ? $0 : nil } ?? ByteBuffer(capacity: bound)
        output.count = 0
        stream.pointee.next_in = input.base.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_in = uInt(input.count)
        let flush = job.isLast ? Z_FINISH : Z_SYNC_FLUSH
        while true {
            if output.free == 0 {
                // Cannot happen with deflateBound's size, but never lose data if it does.
                let bigger = ByteBuffer(capacity: output.capacity * 2)
                bigger.base.copyMemory(from: output.base, byteCount: output.count)
                bigger.count = output.count
                output = bigger
            }
            stream.pointee.next_out = (output.base + output.count).assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(output.free)
            let before = output.free
            let rc = deflate(stream, flush)
            output.count += before - Int(stream.pointee.avail_out)
            if rc == Z_STREAM_END { break }
            guard rc == Z_OK || rc == Z_BUF_ERROR else {
                job.failure = "deflate failed (zlib error \(rc))"
                return
            }
            if !job.isLast && stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { break }
        }
        job.output = output
    }
}

/// The compression workers: plain threads (not Swift's cooperative pool — deflate is long,
/// blocking CPU work) each with its own deflate stream, pulling jobs until the queue closes.
enum CompressionWorkers {
    static func start(count: Int, level: Int32, queue: JobQueue) {
        for index in 0..<count {
            let thread = Thread {
                let deflater = BlockDeflater(level: level)
                while let job = queue.pop() {
                    deflater.compress(job)
                    queue.complete(job)
                }
            }
            thread.name = "backstop-deflate-\(index)"
            thread.start()
        }
    }
}
