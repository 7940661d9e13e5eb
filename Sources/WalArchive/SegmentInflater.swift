#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupPipeline
import Crypto

/// Inflates one archived `.gz` (a WAL segment, 16 MiB by default) and hashes what comes out,
/// either into a file (fetch: temporary name, fsync, rename — PostgreSQL never sees half a
/// segment) or nowhere (verify: the checksum alone).
enum SegmentInflater {
    struct Result {
        var walBytes: UInt64
        var walSHA256: String
        var gzSHA256: String
        var gzBytes: UInt64
    }

    /// Inflates `source`; when `destination` is given the bytes land there atomically.
    static func inflate(_ source: String, to destination: String? = nil) throws -> Result {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileSystemError.errno(errno, "open", source) }
        defer { close(input) }
        var outFD: Int32 = -1
        var temp = ""
        if let destination {
            temp = FileSystem.directory(of: destination) + "/." + FileSystem.lastComponent(of: destination) + ".backstop-\(getpid())"
            outFD = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard outFD >= 0 else { throw FileSystemError.errno(errno, "create", temp) }
        }
        var done = false
        defer {
            if outFD >= 0 { close(outFD) }
            if !done && !temp.isEmpty { unlink(temp) }
        }
        let inflater: GzipInflater
        do {
            inflater = try GzipInflater(outputSize: 1 << 20)
        } catch {
            throw WalArchiveError("zlib could not start inflating \(source)")
        }
        let chunk = 1 << 20
        let inBuffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { inBuffer.deallocate() }
        var walHash = SHA256()
        var gzHash = SHA256()
        let sink: (UnsafeRawBufferPointer) throws -> Void = { bytes in
            walHash.update(bufferPointer: bytes)
            if outFD >= 0 { try FileSystem.writeAll(fd: outFD, bytes, path: temp) }
        }
        do {
            while true {
                let n = read(input, inBuffer, chunk)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileSystemError.errno(errno, "read", source)
                }
                if n == 0 { break }
                let bytes = UnsafeRawBufferPointer(start: inBuffer, count: n)
                gzHash.update(bufferPointer: bytes)
                try inflater.feed(bytes, sink: sink)
            }
            try inflater.finish(sink: sink)
        } catch GzipInflater.Failure.truncated, GzipInflater.Failure.empty {
            throw WalArchiveError("\(source) ends in the middle of its gzip stream; the archived file is damaged")
        } catch let failure as GzipInflater.Failure {
            throw WalArchiveError("\(source) is not a whole gzip stream (\(failure)); the archived file is damaged")
        }
        if outFD >= 0, let destination {
            guard fsync(outFD) == 0 else { throw FileSystemError.errno(errno, "fsync", temp) }
            close(outFD)
            outFD = -1
            guard rename(temp, destination) == 0 else { throw FileSystemError.errno(errno, "rename to \(destination)", temp) }
            done = true
        }
        return Result(walBytes: inflater.uncompressedBytes, walSHA256: hex(walHash.finalize()), gzSHA256: hex(gzHash.finalize()),
                      gzBytes: inflater.compressedBytes)
    }
}

func hex(_ digest: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in digest {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
