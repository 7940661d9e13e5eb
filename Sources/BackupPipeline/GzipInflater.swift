import CZlib

/// The one gzip inflater: every place that reads a `.gz` (verification, restore into psql or
/// Redis, WAL fetch) feeds its bytes through here, so the edge cases are handled once.
///
/// Input arrives in slices of any size (file reads, decrypted age chunks); output leaves in
/// pieces of at most `outputSize` bytes through a sink, so memory stays bounded whatever the
/// file's size. Multi-member files (`cat a.gz b.gz`) are followed to their end, as `gunzip -c`
/// does: when a member ends and more input follows, the stream is reset for the next member.
/// The reset waits for that input, so a member ending exactly at a slice boundary is counted
/// once and no empty member is started. While zlib fills the whole output buffer it is asked
/// again, even after the slice is used up, so output it still holds is never left behind.
/// `finish()` tells a complete stream from a truncated one; bytes after a member that are not
/// another gzip member fail with `.corrupt`.
///
/// Not Sendable: the z_stream belongs to the one thread that inflates a file. Blocking only
/// in the sense that it burns CPU; callers run it where they read the file.
public final class GzipInflater {
    /// Why the bytes are not a complete gzip stream.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// zlib refused to start (out of memory).
        case initialization(String)
        /// No byte was fed at all.
        case empty
        /// zlib rejected the data `atByte` bytes into the input, `afterMembers` members having
        /// ended before (non-zero: likely trailing data that is not gzip).
        case corrupt(atByte: UInt64, afterMembers: Int, message: String)
        /// The input ended inside a member (its end marker and checksum never came).
        case truncated(afterBytes: UInt64)

        public var description: String {
            switch self {
            case .initialization(let message):
                return "zlib could not start inflating: \(message)"
            case .empty:
                return "the stream is empty (not gzip data)"
            case .corrupt(let offset, let members, let message):
                let trailing = members > 0
                    ? " (after \(members) complete gzip member\(members == 1 ? "" : "s"): trailing data that is not gzip?)" : ""
                return "corrupt gzip data near byte \(offset): \(message)\(trailing)"
            case .truncated(let bytes):
                return "truncated: the gzip stream ends after \(bytes) bytes without its end marker and checksum"
            }
        }
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private let output: UnsafeMutableRawPointer
    /// Largest piece handed to the sink at once.
    public let outputSize: Int
    /// gzip members that ended with a good checksum.
    public private(set) var members = 0
    /// Input bytes fed so far.
    public private(set) var compressedBytes: UInt64 = 0
    /// Output bytes handed to the sink so far.
    public private(set) var uncompressedBytes: UInt64 = 0
    /// Bytes of a member have been fed but its end has not been seen.
    public private(set) var inMember = false
    /// The last member ended; the stream is reset only when more input follows.
    private var memberEnded = false
    /// zlib filled the whole output buffer on its last call: it may hold more.
    private var outputPending = false

    public init(outputSize: Int = 256 * 1024) throws {
        self.outputSize = max(1, outputSize)
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        output = .allocate(byteCount: self.outputSize, alignment: 16)
        // 16 + MAX_WBITS: the gzip wrapper only (no zlib or raw deflate streams accepted).
        let rc = backstop_inflateInit2(stream, 16 + MAX_WBITS)
        guard rc == Z_OK else {
            let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
            stream.deinitialize(count: 1)
            stream.deallocate()
            output.deallocate()
            throw Failure.initialization(message)
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        output.deallocate()
    }

    /// Inflates one slice of input. `sink` receives each produced piece (valid only during
    /// the call); whatever it throws stops the inflation and is rethrown.
    public func feed(_ bytes: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let count = bytes.count
        if count > 0, let base = bytes.baseAddress {
            stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(count)
        } else {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        let before = compressedBytes
        compressedBytes += UInt64(count)
        // Reset the count of unread input before leaving, whichever way: it is the caller's memory.
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        while true {
            if memberEnded {
                guard stream.pointee.avail_in > 0 else { return }
                // Another member follows (concatenated files inflate as one).
                let rc = inflateReset(stream)
                guard rc == Z_OK else { throw corrupt(rc, before: before, count: count) }
                memberEnded = false
            }
            guard stream.pointee.avail_in > 0 || outputPending else { return }
            if stream.pointee.avail_in > 0 { inMember = true }
            stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(outputSize)
            let rc = inflate(stream, Z_NO_FLUSH)
            let produced = outputSize - Int(stream.pointee.avail_out)
            outputPending = stream.pointee.avail_out == 0
            if produced > 0 {
                uncompressedBytes += UInt64(produced)
                try sink(UnsafeRawBufferPointer(start: output, count: produced))
            }
            switch rc {
            case Z_STREAM_END:
                members += 1
                inMember = false
                memberEnded = true
                outputPending = false
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: with fresh output room that means the input is used up.
                outputPending = false
                guard stream.pointee.avail_in == 0 else { throw corrupt(rc, before: before, count: count) }
            default:
                throw corrupt(rc, before: before, count: count)
            }
        }
    }

    /// Feeds a byte array (small inputs, tests).
    public func feed(_ bytes: [UInt8], sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try bytes.withUnsafeBytes { try feed($0, sink: sink) }
    }

    /// The input has ended: hands over what zlib still holds, then throws unless the input was
    /// one or more complete gzip members.
    public func finish(sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if outputPending { try feed(UnsafeRawBufferPointer(start: nil, count: 0), sink: sink) }
        if compressedBytes == 0 { throw Failure.empty }
        if inMember || members == 0 { throw Failure.truncated(afterBytes: compressedBytes) }
    }

    private func corrupt(_ rc: Int32, before: UInt64, count: Int) -> Failure {
        let consumed = UInt64(count - Int(stream.pointee.avail_in))
        let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
        return .corrupt(atByte: before + consumed, afterMembers: members, message: message)
    }
}
