#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import Foundation

/// age files on disk: streaming decryption of a whole file, to a sink or atomically to a new
/// file. Blocking (read/write/fsync): call from a dedicated thread or through `Blocking`.
public enum AgeFile {
    /// Decrypts `path` into `sink` in authenticated 64 KiB chunks; returns the plaintext size.
    /// On failure some authenticated plaintext may already have gone to the sink: callers
    /// that must not keep it (a restore) undo what the sink did.
    @discardableResult
    public static func decrypt(path: String, identities: [AgeIdentity], into sink: AgeDecryptor.Sink) throws -> UInt64 {
        let decryptor = AgeDecryptor(identities: identities)
        try FileSystem.readChunks(of: path) { try decryptor.update($0, into: sink) }
        try decryptor.finish(into: sink)
        return decryptor.plaintextBytes
    }

    /// Decrypts `path` to `output` atomically (`AtomicFile`: hidden temporary file, mode 0600,
    /// fsync, rename): a failed or interrupted run leaves no partial plaintext under any name.
    @discardableResult
    public static func decrypt(path: String, identities: [AgeIdentity], toFile output: String) throws -> UInt64 {
        try AtomicFile.write(to: output, mode: 0o600, creatingDirectory: false) { fd, temp in
            try decrypt(path: path, identities: identities) { try FileSystem.writeAll(fd: fd, $0, path: temp) }
        }
    }

    /// The header of `path`, parsed from the file's first bytes (no key needed): what a check
    /// without the identity can still prove.
    public static func header(path: String) throws -> AgeHeader {
        var head: [UInt8] = []
        struct Enough: Error {}
        do {
            try FileSystem.readChunks(of: path) { bytes in
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
            try FileSystem.readChunks(of: path) { bytes in
                try decryptor.update(bytes) { _ in }
                if decryptor.header != nil { throw Opened() }
            }
        } catch is Opened {
            return
        }
        throw AgeError(.headerFailure, "the file ends inside the header")
    }
}
