import AgeEncryption
import BackstopCore
import CZlib
import Crypto
import Foundation

/// A finished backup file: in place under its final name, fsynced, checksummed.
public struct WrittenFile: Sendable, Equatable {
    /// Final path of the file.
    public var path: String
    /// Size on disk (the gzip file, or the age file around it).
    public var sizeBytes: UInt64
    /// SHA-256 of the file's bytes, lowercase hex (what `sha256sum` prints).
    public var sha256: String
    /// Bytes that went in before compression.
    public var uncompressedBytes: UInt64
    /// Fingerprints of the age recipients the file is encrypted to; empty when not encrypted.
    public var recipientFingerprints: [String] = []

    /// Whether the file on disk is age-encrypted (gzip inside age).
    public var isEncrypted: Bool { !recipientFingerprints.isEmpty }
}

/// Why writing a backup file failed. The temporary file is already gone when this is thrown.
public struct BackupWriteError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var description: String { "writing \(path) failed: \(reason)" }
}

/// THE pipeline every backup goes through: bytes in → gzip → SHA-256 → a hidden temporary
/// file in the destination folder → fsync → rename → fsync of the folder. Until `finish()`
/// returns there is no file under the final name, so an interrupted run (an error, a kill, a
/// full disk) never leaves anything that looks like a backup; `abort()` (or deinit) removes
/// the temporary file.
///
/// Compression runs pigz-style on worker threads: the input is cut into blocks, each block is
/// deflated independently (primed with the previous block's last 32 KiB as dictionary, ended
/// with a sync flush, the last with Z_FINISH), and the raw deflate blocks are written in order
/// inside ONE gzip member whose CRC-32 is combined from the blocks' CRCs. The result is an
/// ordinary gzip file; reading, compressing and writing overlap, and memory stays bounded (at
/// most `2 × workers` blocks in flight).
///
/// With recipients, the gzip stream is encrypted in the age v1 format on its way to the
/// temporary file (gzip → age → SHA-256 → temp file): no plaintext byte reaches the disk, not
/// even in the `.partial` file. Sealing runs on the writing thread while the workers deflate
/// the next blocks, so encryption overlaps compression; the SHA-256 is of the file as stored.
///
/// Use from one thread (not the cooperative pool: `write`/`read(from:)` block).
public final class BackupFileWriter {
    public let destination: String
    public let temporaryPath: String
    public let compressionLevel: Int32

    private let blockSize: Int
    private let maxInFlight: Int
    private let queue = JobQueue()
    private var fd: Int32
    private var hasher = SHA256()
    private var current: ByteBuffer
    private var previousInput: ByteBuffer?
    private var lastDrainedInput: ByteBuffer?
    private var inFlight: [BlockJob] = []
    private var inFlightHead = 0
    private var inputPool: [ByteBuffer] = []
    private var outputPool: [ByteBuffer] = []
    private var crc: UInt = 0
    private var state = State.open
    private let encryptor: AgeEncryptor?
    private let recipientFingerprints: [String]

    /// Bytes accepted so far (before compression).
    public private(set) var uncompressedBytes: UInt64 = 0
    /// Bytes written to the temporary file so far.
    public private(set) var compressedBytes: UInt64 = 0

    private enum State { case open, finished, aborted }

    /// Creates `.NAME.partial` beside `destination` (replacing a stale one from a crashed run)
    /// and starts the compression workers.
    /// - Parameters:
    ///   - compressionLevel: gzip level 1–9.
    ///   - blockSize: bytes per independently deflated block.
    ///   - workers: compression threads; default: one per core.
    ///   - recipients: age recipients to encrypt to; empty for a plain gzip file.
    public init(destination: String, compressionLevel: Int32 = CompressionSettings.defaultLevel,
                blockSize: Int = 256 * 1024, workers: Int? = nil, recipients: [AgeRecipient] = []) throws {
        precondition((1...9).contains(compressionLevel), "gzip level must be 1...9")
        self.destination = destination
        self.compressionLevel = compressionLevel
        self.blockSize = max(blockSize, 64 * 1024)
        encryptor = recipients.isEmpty ? nil : try AgeEncryptor(recipients: recipients)
        recipientFingerprints = recipients.map(\.fingerprint)
        let folder = FileSystem.directory(of: destination)
        temporaryPath = folder + "/." + FileSystem.lastComponent(of: destination) + ".partial"
        try FileSystem.createDirectory(folder)
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "create", temporaryPath) }
        let workerCount = max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount)
        maxInFlight = max(2, workerCount * 2)
        current = ByteBuffer(capacity: self.blockSize)
        crc = crc32(0, nil, 0)
        CompressionWorkers.start(count: workerCount, level: compressionLevel, queue: queue)
        // gzip header: magic, deflate, no flags, no mtime (reproducible), XFL, OS = Unix.
        let xfl: UInt8 = compressionLevel == 9 ? 2 : (compressionLevel == 1 ? 4 : 0)
        let header: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]
        do {
            try header.withUnsafeBytes { try emit($0) }
        } catch {
            abort()
            throw error
        }
    }

    deinit { abort() }

    /// Adds bytes (copied into the current block).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard state == .open else { throw BackupWriteError(path: destination, reason: "the writer is already \(state == .finished ? "finished" : "aborted")") }
        var offset = 0
        do {
            while offset < bytes.count {
                if current.free == 0 { try submit(isLast: false) }
                let n = min(current.free, bytes.count - offset)
                current.spare.baseAddress!.copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
                current.count += n
                offset += n
            }
        } catch {
            abort()
            throw error
        }
        uncompressedBytes += UInt64(bytes.count)
    }

    /// Convenience for tests and small inputs.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// One `read()` from `source` straight into the current block — no intermediate buffer.
    /// Returns the byte count, 0 at end of input. Blocks: call it from a dedicated thread.
    /// `observe` sees the bytes just read, before compression (a base backup's tar stream
    /// is watched for its `backup_manifest` this way, in memory, without a second copy).
    public func read(from source: Int32, sourceName: String, observe: ((UnsafeRawBufferPointer) throws -> Void)? = nil) throws -> Int {
        guard state == .open else { throw BackupWriteError(path: destination, reason: "the writer is not open") }
        do {
            if current.free == 0 { try submit(isLast: false) }
            while true {
                let spare = current.spare
                let n = Glibc.read(source, spare.baseAddress, spare.count)
                if n >= 0 {
                    if let observe, n > 0 { try observe(UnsafeRawBufferPointer(start: spare.baseAddress, count: n)) }
                    current.count += n
                    uncompressedBytes += UInt64(n)
                    return n
                }
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "read", sourceName)
            }
        } catch {
            abort()
            throw error
        }
    }

    /// Compresses what is left, writes the gzip trailer, fsyncs, renames the temporary file to
    /// `destination` and fsyncs the folder. On any error the temporary file is removed.
    public func finish() throws -> WrittenFile {
        guard state == .open else { throw BackupWriteError(path: destination, reason: "the writer is not open") }
        do {
            try submit(isLast: true)
            try drain(all: true)
            var trailer = [UInt8](repeating: 0, count: 8)
            let crc32Value = UInt32(truncatingIfNeeded: crc)
            let isize = UInt32(truncatingIfNeeded: uncompressedBytes)
            for i in 0..<4 {
                trailer[i] = UInt8(truncatingIfNeeded: crc32Value >> (8 * UInt32(i)))
                trailer[4 + i] = UInt8(truncatingIfNeeded: isize >> (8 * UInt32(i)))
            }
            try trailer.withUnsafeBytes { try emit($0) }
            try encryptor?.finish { try self.store($0) }
            guard fsync(fd) == 0 else { throw FileSystemError.errno(errno, "fsync", temporaryPath) }
            let closed = close(fd)
            fd = -1
            guard closed == 0 else { throw FileSystemError.errno(errno, "close", temporaryPath) }
            guard rename(temporaryPath, destination) == 0 else { throw FileSystemError.errno(errno, "rename to \(destination)", temporaryPath) }
        } catch {
            abort()
            throw error
        }
        state = .finished
        queue.close()
        FileSystem.syncDirectory(FileSystem.directory(of: destination))
        let digest = hasher.finalize()
        return WrittenFile(path: destination, sizeBytes: compressedBytes,
                           sha256: digest.map { hexByte($0) }.joined(), uncompressedBytes: uncompressedBytes,
                           recipientFingerprints: recipientFingerprints)
    }

    /// Stops the workers and removes the temporary file. Safe to call more than once; a
    /// finished file is left alone.
    public func abort() {
        guard state == .open else { return }
        state = .aborted
        queue.close()
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(temporaryPath)
    }

    // MARK: - Blocks

    private func submit(isLast: Bool) throws {
        let job = BlockJob(input: current, dictionary: previousInput, isLast: isLast, output: outputPool.popLast())
        previousInput = current
        current = inputPool.popLast() ?? ByteBuffer(capacity: blockSize)
        current.count = 0
        inFlight.append(job)
        queue.push(job)
        try drain(all: false)
    }

    /// Writes finished blocks in order. Waits for the oldest while too many are in flight
    /// (or for all of them when `all`).
    private func drain(all: Bool) throws {
        while inFlightHead < inFlight.count {
            let job = inFlight[inFlightHead]
            let pending = inFlight.count - inFlightHead
            if all || pending >= maxInFlight {
                queue.waitDone(job)
            } else if !queue.isDone(job) {
                break
            }
            inFlightHead += 1
            if inFlightHead > 32 {
                inFlight.removeFirst(inFlightHead)
                inFlightHead = 0
            }
            if let failure = job.failure { throw BackupWriteError(path: destination, reason: failure) }
            guard let output = job.output else { throw BackupWriteError(path: destination, reason: "a block came back without output") }
            try emit(output.bytes)
            crc = crc32_combine(crc, job.crc, off_t(job.input.count))
            outputPool.append(output)
            // This block's predecessor served as its dictionary and is no longer referenced
            // by any worker: recycle it.
            if let old = lastDrainedInput, old !== previousInput { inputPool.append(old) }
            lastDrainedInput = job.input
        }
    }

    /// gzip bytes on their way out: through the encryptor when there is one.
    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        if let encryptor {
            try encryptor.update(bytes) { try self.store($0) }
        } else {
            try store(bytes)
        }
    }

    /// Bytes as stored: written to the temporary file and hashed.
    private func store(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        try FileSystem.writeAll(fd: fd, bytes, path: temporaryPath)
        hasher.update(bufferPointer: bytes)
        compressedBytes += UInt64(bytes.count)
    }
}

private let hexDigits = Array("0123456789abcdef")

func hexByte(_ byte: UInt8) -> String {
    String([hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0f)]])
}
