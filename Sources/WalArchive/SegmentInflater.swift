#if canImport(Glibc)
import Glibc
#endif
import AgeEncryption
import BackstopCore
import BackupPipeline
import Crypto

/// Inflates one archived `.gz` or `.gz.age` (a WAL segment, 16 MiB by default) and hashes what comes out,
/// either into a file (fetch: temporary name, fsync, rename — PostgreSQL never sees half a
/// segment) or nowhere (verify: the checksum alone).
enum SegmentInflater {
    struct Result {
        var walBytes: UInt64
        var walSHA256: String
        var gzSHA256: String
        var gzBytes: UInt64
    }

    /// Inflates `source`; when `destination` is given the bytes land there atomically. A
    /// `.gz.age` source is decrypted on the way with `identities` (each 64 KiB chunk
    /// authenticated before its bytes are inflated); `gzSHA256` is always of the file as stored.
    static func inflate(_ source: String, to destination: String? = nil, identities: [AgeIdentity]? = nil) throws -> Result {
        let decryptor: AgeDecryptor?
        if source.hasSuffix(".age") {
            guard let identities else {
                throw WalArchiveError("\(source) is age-encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE to the file holding its AGE-SECRET-KEY-1 key (mode 0600) to read it")
            }
            decryptor = AgeDecryptor(identities: identities)
        } else {
            decryptor = nil
        }
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
        var walHash = SHA256()
        var gzHash = SHA256()
        let sink: (UnsafeRawBufferPointer) throws -> Void = { bytes in
            walHash.update(bufferPointer: bytes)
            if outFD >= 0 { try FileSystem.writeAll(fd: outFD, bytes, path: temp) }
        }
        // gzip bytes (decrypted when the file is age) inflated into the WAL bytes.
        let inflateBytes: (UnsafeRawBufferPointer) throws -> Void = { gzip in try inflater.feed(gzip, sink: sink) }
        var storedBytes: UInt64 = 0
        do {
            try FileSystem.readChunks(fd: input, path: source) { bytes in
                gzHash.update(bufferPointer: bytes)
                storedBytes += UInt64(bytes.count)
                if let decryptor { try decryptor.update(bytes, into: inflateBytes) } else { try inflateBytes(bytes) }
            }
            try decryptor?.finish(into: inflateBytes)
            try inflater.finish(sink: sink)
        } catch let error as AgeError where error.kind == .noMatch {
            throw WalArchiveError("\(source) cannot be decrypted with BACKUP_ENCRYPTION_IDENTITY_FILE: \(error)")
        } catch let error as AgeError {
            throw WalArchiveError("\(source) is damaged (\(error)); the archived file was refused")
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
                      gzBytes: storedBytes)
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
