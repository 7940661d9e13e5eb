#if canImport(Glibc)
import Glibc
#endif
import AgeEncryption
import BackstopCore
import BackupPipeline
import Crypto
import Foundation

/// The continuous WAL archive, `$BACKUP_DIR/postgres/wal/`: every completed segment,
/// `.history` and `.backup` file as `<name>.gz` (gzip through the one backup pipeline:
/// temporary file, fsync, rename) with `<name>.meta` (`WalArchiveMeta`: both checksums, when).
/// With recipients, completed segments are stored as `<name>.gz.age` (gzip, then age, in the
/// same pipeline: no plain WAL byte reaches the folder); `.history` and `.backup` files stay
/// `.gz`, because the chain check (verify, a restore's plan) must read them without the key,
/// and they hold only timeline switch points and backup labels, never row data. Both kinds of
/// segment are found by name, so turning encryption on (or rotating keys) mid-archive leaves
/// one chain; reading a `.gz.age` needs `identities`.
/// `.receiving/` (or `BACKUP_WAL_RECEIVE_DIR`, `stagingDirectory`, possibly on another
/// filesystem) holds what pg_receivewal is writing (the current `.partial`); `.conflicts/`
/// keeps a segment that arrived with different content under a name already archived (never
/// overwritten: verify reports it).
///
/// Stores take an exclusive `flock` on `.lock` in the folder, so pg_receivewal's ingester and
/// `backstop wal push` (archive_command) can run side by side. Blocking: call from a
/// dedicated thread (`Blocking.run`).
public struct WalArchive: Sendable {
    public let directory: String
    public let compressionLevel: Int32
    /// Age recipients new segments are encrypted to; empty: plain `.gz`.
    public let recipients: [AgeRecipient]
    /// The keys that read `.gz.age` segments (fetch, verify, a restore); nil: not given.
    public let identities: [AgeIdentity]?
    /// Where pg_receivewal writes (its `--directory`): `BACKUP_WAL_RECEIVE_DIR`, by default
    /// `.receiving/` in the archive. Read for completed segments to archive, the `.partial` a
    /// restore may be served from and the chain's newest point.
    public let stagingDirectory: String

    /// `receiveDirectory`: `WalArchiveSettings.receiveDirectory` (nil: `.receiving/` inside).
    public init(backupDir: String, compressionLevel: Int32 = CompressionSettings.defaultLevel,
                recipients: [AgeRecipient] = [], identities: [AgeIdentity]? = nil, receiveDirectory: String? = nil) {
        directory = backupDir + "/postgres/wal"
        stagingDirectory = receiveDirectory ?? directory + "/.receiving"
        self.compressionLevel = compressionLevel
        self.recipients = recipients
        self.identities = identities
    }

    /// Segments refused because the archive holds different content under the same name.
    public var conflictsDirectory: String { directory + "/.conflicts" }

    public enum StoreResult: Sendable, Equatable {
        case stored(WalArchiveMeta)
        /// The archive already had this name with the same WAL bytes: nothing written.
        case alreadyArchived(WalArchiveMeta)

        public var meta: WalArchiveMeta {
            switch self {
            case .stored(let m), .alreadyArchived(let m): m
            }
        }
    }

    /// The stored file of `name`: the one its `.meta` names, else the `.gz.age` or `.gz` present.
    public func dataPath(_ name: String) -> String {
        if let bytes = try? FileSystem.read(metaPath(name)), let meta = try? WalArchiveMeta.decode(bytes) { return storedPath(meta) }
        let encrypted = directory + "/" + name + ".gz.age"
        return FileSystem.exists(encrypted) ? encrypted : directory + "/" + name + ".gz"
    }
    public func metaPath(_ name: String) -> String { directory + "/" + name + ".meta" }
    /// The file a `.meta` describes.
    public func storedPath(_ meta: WalArchiveMeta) -> String { directory + "/" + meta.file }

    /// Whether `name` is stored encrypted when recipients are set (segments only).
    func encrypts(_ name: WalFileName) -> Bool {
        if case .segment = name { return !recipients.isEmpty }
        return false
    }

    /// The record of `name`, nil when it is not (completely) archived.
    public func meta(_ name: String) -> WalArchiveMeta? {
        guard let bytes = try? FileSystem.read(metaPath(name)), let meta = try? WalArchiveMeta.decode(bytes),
              FileSystem.exists(storedPath(meta)) else { return nil }
        return meta
    }

    /// Archives the file at `path` under `name` (a segment, `.history` or `.backup` name).
    /// Same name and same bytes already archived: `.alreadyArchived`, nothing written. Same
    /// name, different bytes: throws, and the archived file is kept (PostgreSQL's documented
    /// contract for archive_command: never overwrite).
    public func store(path: String, name: String, source: String) throws -> StoreResult {
        guard let parsed = WalFileName(name), !isPartial(parsed) else {
            throw WalArchiveError("\(name) is not a WAL segment, .history or .backup file name; nothing was archived")
        }
        try FileSystem.createDirectory(directory, mode: 0o750)
        let lock = try ArchiveLock(path: directory + "/.lock")
        defer { lock.release() }
        if let existing = meta(name) {
            let digest = try FileDigest.sha256(path: path)
            if digest.sha256 == existing.walSHA256 { return .alreadyArchived(existing) }
            throw WalArchiveError("\(name) is already archived with different content (archived \(existing.walBytes) bytes, SHA-256 \(existing.walSHA256.prefix(12))…; offered \(digest.sizeBytes) bytes, \(digest.sha256.prefix(12))…); the archived copy was kept. Two servers archiving into one folder, or a restored server on the old timeline?")
        }
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(input) }
        let encrypted = encrypts(parsed)
        let file = name + (encrypted ? ".gz.age" : ".gz")
        // Not archived (no .meta): a .gz or .gz.age present is an interrupted store's leftover.
        unlink(directory + "/" + name + (encrypted ? ".gz" : ".gz.age"))
        let writer = try BackupFileWriter(destination: directory + "/" + file, compressionLevel: compressionLevel,
                                          recipients: encrypted ? recipients : [])
        var hasher = SHA256()
        do {
            try FileSystem.readChunks(fd: input, path: path) { bytes in
                hasher.update(bufferPointer: bytes)
                try writer.write(bytes)
            }
        } catch {
            writer.abort()
            throw error
        }
        let written = try writer.finish()
        var meta = WalArchiveMeta(name: name, file: file, sizeBytes: written.sizeBytes, sha256: written.sha256,
                                  walBytes: written.uncompressedBytes, walSHA256: hex(hasher.finalize()),
                                  archivedAt: WallClock.now(), source: source)
        if written.isEncrypted {
            meta.encryption = "age"
            meta.recipients = written.recipientFingerprints.joined(separator: ",")
        }
        try AtomicFile.write(try meta.encoded(), to: metaPath(name), mode: 0o640)
        return .stored(meta)
    }

    /// Moves a file that clashed with an archived one into `.conflicts/` (stamped), so nothing
    /// received is ever deleted unseen. From a receive folder on another filesystem (rename(2)
    /// says EXDEV) it is copied (temporary name, fsync, rename) and only then removed.
    public func setAside(path: String, name: String) throws -> String {
        try FileSystem.createDirectory(conflictsDirectory, mode: 0o750)
        let target = conflictsDirectory + "/" + name + "." + WallClock.fileStamp(WallClock.now())
        if rename(path, target) == 0 { return target }
        guard errno == EXDEV else { throw FileSystemError.errno(errno, "rename to \(target)", path) }
        try copyFile(path, to: target)
        FileSystem.syncDirectory(conflictsDirectory)
        unlink(path)
        return target
    }

    public enum FetchResult: Sendable, Equatable {
        case fetched(fromPartial: Bool)
        case missing
    }

    /// Writes the WAL file `name` to `destination` (restore_command's `%f` and `%p`), checked
    /// against its `wal_sha256`. With `allowPartial`, a segment not yet complete is served
    /// from the receiver's `.partial` (so a restore reaches the newest streamed commit).
    public func fetch(name: String, to destination: String, allowPartial: Bool) throws -> FetchResult {
        guard let parsed = WalFileName(name), !isPartial(parsed) else {
            throw WalArchiveError("\(name) is not a WAL file name PostgreSQL asks for")
        }
        if let meta = meta(name) {
            try Self.inflate(storedPath(meta), checkedAgainst: meta, to: destination, identities: identities)
            return .fetched(fromPartial: false)
        }
        if allowPartial, case .segment = parsed {
            let partial = stagingDirectory + "/" + name + ".partial"
            if FileSystem.exists(partial) {
                try copyFile(partial, to: destination)
                return .fetched(fromPartial: true)
            }
        }
        return .missing
    }

    /// Inflates an archived `.gz` (local, or downloaded from the bucket) into `destination`
    /// (temporary name, fsync, rename) and proves it is the file `meta` describes: the `.gz`'s
    /// SHA-256 and the WAL bytes' SHA-256 both match, or `destination` is left absent and the
    /// error says the copy is damaged.
    /// A `.gz.age` copy is decrypted on the way with `identities`.
    public static func inflate(_ gz: String, checkedAgainst meta: WalArchiveMeta, to destination: String, identities: [AgeIdentity]? = nil) throws {
        let result = try SegmentInflater.inflate(gz, to: destination, identities: identities)
        guard result.walSHA256 == meta.walSHA256, result.gzSHA256 == meta.sha256 else {
            unlink(destination)
            throw WalArchiveError("\(gz) does not match its .meta (SHA-256 of the WAL \(result.walSHA256.prefix(12))…, recorded \(meta.walSHA256.prefix(12))…; of the .gz \(result.gzSHA256.prefix(12))…, recorded \(meta.sha256.prefix(12))…): the archived copy of \(meta.name) is damaged")
        }
    }

    /// The history of `timeline` from the archive; nil for timeline 1 or when it is missing.
    public func history(timeline: UInt32) throws -> TimelineHistory? {
        let name = historyFileName(timeline: timeline)
        guard let meta = meta(name) else { return nil }
        let tmp = directory + "/.history-read-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(tmp) }
        _ = try SegmentInflater.inflate(storedPath(meta), to: tmp, identities: identities)
        let text = String(decoding: try FileSystem.read(tmp), as: UTF8.self)
        return try TimelineHistory(timeline: timeline, text: text)
    }

    /// Every archived file, by name (a `.gz` or `.gz.age` with its `.meta`), plus the leftovers
    /// a check should mention.
    public func contents() -> WalArchiveContents {
        var result = WalArchiveContents()
        let names = (try? FileSystem.list(directory)) ?? []
        var gz = Set<String>()
        var metas = Set<String>()
        for file in names where !file.hasPrefix(".") {
            if file.hasSuffix(".gz") { gz.insert(String(file.dropLast(3))) }
            if file.hasSuffix(".gz.age") { gz.insert(String(file.dropLast(7))) }
            if file.hasSuffix(".meta") { metas.insert(String(file.dropLast(5))) }
        }
        for name in gz.union(metas).sorted() {
            guard let parsed = WalFileName(name) else { continue }
            if gz.contains(name), metas.contains(name), let bytes = try? FileSystem.read(metaPath(name)),
               let meta = try? WalArchiveMeta.decode(bytes) {
                result.files.append(.init(name: parsed, meta: meta))
            } else if gz.contains(name) {
                result.withoutMeta.append(name)
            } else {
                result.withoutData.append(name)
            }
        }
        result.partials = ((try? FileSystem.list(stagingDirectory)) ?? []).filter { $0.hasSuffix(".partial") && !$0.hasPrefix(".") }.sorted()
        result.conflicts = ((try? FileSystem.list(conflictsDirectory)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        return result
    }

    private func isPartial(_ name: WalFileName) -> Bool {
        if case .partial = name { return true }
        return false
    }

    private func copyFile(_ source: String, to destination: String) throws {
        let temp = FileSystem.directory(of: destination) + "/." + FileSystem.lastComponent(of: destination) + ".backstop-\(getpid())"
        let bytes = try FileSystem.read(source)
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "create", temp) }
        do {
            try FileSystem.writeAll(fd: fd, bytes, path: temp)
            guard fsync(fd) == 0 else { throw FileSystemError.errno(errno, "fsync", temp) }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
        guard rename(temp, destination) == 0 else {
            unlink(temp)
            throw FileSystemError.errno(errno, "rename to \(destination)", temp)
        }
    }
}

/// What `WalArchive.contents()` found.
public struct WalArchiveContents: Sendable {
    public struct File: Sendable {
        public var name: WalFileName
        public var meta: WalArchiveMeta
        public init(name: WalFileName, meta: WalArchiveMeta) {
            self.name = name
            self.meta = meta
        }
    }
    public var files: [File] = []
    /// `.gz` / `.gz.age` files without a `.meta` (an interrupted store).
    public var withoutMeta: [String] = []
    /// `.meta` files whose `.gz` is gone.
    public var withoutData: [String] = []
    /// `.partial` segments in the receive folder (`WalArchive.stagingDirectory`).
    public var partials: [String] = []
    /// Files set aside in `.conflicts/`.
    public var conflicts: [String] = []

    public init() {}

    /// The completed segments, sorted by number then timeline.
    public var segments: [(segment: WalSegment, meta: WalArchiveMeta)] {
        files.compactMap { f -> (WalSegment, WalArchiveMeta)? in
            if case .segment(let s) = f.name { return (s, f.meta) }
            return nil
        }.sorted { $0.0 < $1.0 }
    }
}

/// A blocking exclusive `flock` (FileLock never waits; two stores of WAL should queue).
final class ArchiveLock {
    private var fd: Int32

    init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let e = errno
                close(fd)
                throw FileSystemError.errno(e, "lock", path)
            }
        }
    }

    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
