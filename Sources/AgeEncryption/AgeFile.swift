#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import Foundation

/// age files on disk: streaming decryption of a whole file, to a sink or atomically to a new
/// file. Blocking (read/write/fsync): call from a dedicated thread or through `Blocking`.
public enum AgeFile {
    /// Calls `body` with each read of `path`, 1 MiB at a time, to its end.
    public static func read(path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(fd) }
        let size = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "read", path)
            }
            if n == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// Decrypts `path` into `sink` in authenticated 64 KiB chunks; returns the plaintext size.
    /// On failure some authenticated plaintext may already have gone to the sink: callers
    /// that must not keep it (a restore) undo what the sink did.
    @discardableResult
    public static func decrypt(path: String, identities: [AgeIdentity], into sink: AgeDecryptor.Sink) throws -> UInt64 {
        let decryptor = AgeDecryptor(identities: identities)
        try read(path: path) { try decryptor.update($0, into: sink) }
        try decryptor.finish(into: sink)
        return decryptor.plaintextBytes
    }

    /// Decrypts `path` to `output` atomically (hidden temporary file, mode 0600, fsync,
    /// rename): a failed or interrupted run leaves no partial plaintext under any name.
    @discardableResult
    public static func decrypt(path: String, identities: [AgeIdentity], toFile output: String) throws -> UInt64 {
        let dir = FileSystem.directory(of: output)
        let temp = "\(dir)/.\(FileSystem.lastComponent(of: output)).decrypting-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "create", temp) }
        var done = false
        defer {
            if !done { unlink(temp) }
        }
        let bytes: UInt64
        do {
            bytes = try decrypt(path: path, identities: identities) { try FileSystem.writeAll(fd: fd, $0, path: temp) }
            guard fsync(fd) == 0 else { throw FileSystemError.errno(errno, "fsync", temp) }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temp, output) == 0 else { throw FileSystemError.errno(errno, "rename to \(output)", temp) }
        done = true
        FileSystem.syncDirectory(dir)
        return bytes
    }

    /// The header of `path`, parsed from the file's first bytes (no key needed): what a check
    /// without the identity can still prove.
    public static func header(path: String) throws -> AgeHeader {
        var head: [UInt8] = []
        struct Enough: Error {}
        do {
            try read(path: path) { bytes in
                head += bytes.prefix(AgeDecryptor.maxHeaderBytes - head.count)
                if head.count >= AgeDecryptor.maxHeaderBytes || AgeHeader.completeLength(in: head) != nil { throw Enough() }
            }
        } catch is Enough {}
        return try AgeHeader.read(from: head)
    }

    /// Proves `identities` open `path` (a stanza opens, the header MAC holds) before anything
    /// is written from it, so a wrong key is refused with nothing changed.
    public static func checkKey(path: String, identities: [AgeIdentity]) throws {
        let decryptor = AgeDecryptor(identities: identities)
        struct Opened: Error {}
        do {
            try read(path: path) { bytes in
                try decryptor.update(bytes) { _ in }
                if decryptor.header != nil { throw Opened() }
            }
        } catch is Opened {
            return
        }
        throw AgeError(.headerFailure, "the file ends inside the header")
    }
}
