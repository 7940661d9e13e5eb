#if canImport(Glibc)
import Glibc
#endif
import AgeEncryption
import BackstopCore
import BackupCatalog
import BackupJobs
import S3
import WalArchive

/// The bucket's copy of the WAL archive, `postgres/wal/<name>.gz` + `<name>.meta` under
/// BACKUP_S3_PREFIX (what `WalUploader` writes): listed into the same `WalArchiveContents` the
/// local archive gives, so the one `WalChain` check, the one `WalRetention.decide` and the one
/// point-in-time planner work on either. Reading a `.meta` is a small GET (eight at a time).
public struct RemoteWalArchive: Sendable {
    /// What a listing found.
    public struct Listing: Sendable {
        public var contents = WalArchiveContents()
        /// Object sizes of the `.gz` objects, by file name.
        public var sizes: [String: UInt64] = [:]
        /// `.meta` objects that did not decode.
        public var unreadableMetas: [String] = []
        public var histories: [UInt32: TimelineHistory] = [:]
        /// `.history` files that could not be read.
        public var historyProblems: [String] = []

        public var chain: WalChain {
            let size = contents.segments.first.map { $0.meta.walBytes > 0 ? $0.meta.walBytes : WalSegment.defaultSize } ?? WalSegment.defaultSize
            return WalChain(contents: contents, histories: histories, segmentSize: size)
        }
    }

    public let settings: S3Settings
    /// Scratch files (a `.history` being read) go to `<backupDir>/.state/`.
    public let backupDir: String

    public init(settings: S3Settings, backupDir: String) {
        self.settings = settings
        self.backupDir = backupDir
    }

    var uploader: WalUploader { WalUploader(settings: settings, backupDir: backupDir) }
    public var location: String { settings.destination + "/postgres/wal" }
    public func address(_ name: String) -> String { "s3://\(settings.bucket)/\(uploader.key(name))" }

    /// Lists `postgres/wal/`, reads every `.meta` and every `.history`. Throws when the bucket
    /// cannot be read: a partial picture must never drive retention or a restore.
    public func list() async throws -> Listing {
        let client = S3Client(settings: settings)
        let objects = try await client.list(prefix: "postgres/wal/")
        let strip = settings.key(for: "postgres/wal/")
        var gz: [String: UInt64] = [:]
        var metas: [String: String] = [:]
        for object in objects where object.key.hasPrefix(strip) {
            let rest = String(object.key.dropFirst(strip.count))
            guard !rest.contains("/") else { continue }
            if rest.hasSuffix(".gz"), WalFileName(rest.dropLast(3)) != nil { gz[String(rest.dropLast(3))] = object.size }
            // An encrypted segment (`.gz.age`): the same chain, read with the key.
            if rest.hasSuffix(".gz.age"), WalFileName(rest.dropLast(7)) != nil { gz[String(rest.dropLast(7))] = object.size }
            if rest.hasSuffix(".meta"), WalFileName(rest.dropLast(5)) != nil { metas[String(rest.dropLast(5))] = object.key }
        }
        var listing = Listing()
        listing.sizes = gz
        let names = metas.keys.filter { gz[$0] != nil }.sorted()
        listing.contents.withoutMeta = gz.keys.filter { metas[$0] == nil }.sorted()
        listing.contents.withoutData = metas.keys.filter { gz[$0] == nil }.sorted()
        let decoded = try await readMetas(names.map { metas[$0]! }, client: client)
        for (name, meta) in zip(names, decoded) {
            guard let meta, meta.name == name, let parsed = WalFileName(name, segmentSize: meta.walBytes > 0 ? meta.walBytes : WalSegment.defaultSize) else {
                listing.unreadableMetas.append(name)
                continue
            }
            listing.contents.files.append(WalArchiveContents.File(name: parsed, meta: meta))
        }
        for file in listing.contents.files {
            guard case .history(let tli) = file.name else { continue }
            do {
                listing.histories[tli] = try await history(file.meta)
            } catch {
                listing.historyProblems.append("\(file.meta.name): \(error)")
            }
        }
        return listing
    }

    func readMetas(_ keys: [String], client: S3Client) async throws -> [WalArchiveMeta?] {
        var results = [WalArchiveMeta?](repeating: nil, count: keys.count)
        try await withThrowingTaskGroup(of: (Int, WalArchiveMeta?).self) { group in
            var next = 0
            func add() {
                let index = next
                next += 1
                let key = keys[index]
                group.addTask { (index, try? WalArchiveMeta.decode(try await client.get(key: key))) }
            }
            for _ in 0..<min(8, keys.count) { add() }
            while let (index, meta) = try await group.next() {
                results[index] = meta
                if next < keys.count { add() }
            }
        }
        return results
    }

    /// Downloads and reads one `.history` file (checked against its `.meta`).
    func history(_ meta: WalArchiveMeta) async throws -> TimelineHistory? {
        guard case .history(let tli)? = WalFileName(meta.name) else { return nil }
        let scratch = backupDir + "/.state/.wal-history-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileSystem.createDirectory(backupDir + "/.state")
        defer { unlink(scratch) }
        try await fetch(meta: meta, to: scratch)
        return try TimelineHistory(timeline: tli, text: String(decoding: try FileSystem.read(scratch), as: UTF8.self))
    }

    /// What `fetch` found.
    public enum FetchResult: Sendable, Equatable {
        case fetched
        case missing
    }

    /// restore_command's fallback: `name` from the bucket into `destination`, checked against
    /// the bucket's `.meta` (SHA-256 of the `.gz` and of the WAL) and written atomically.
    /// `.missing` when the bucket has no `.meta` for it; a damaged copy throws `WalArchiveError`.
    /// A `.gz.age` copy is decrypted with `identities` (without them it says the key is needed).
    public func fetch(name: String, to destination: String, identities: [AgeIdentity]? = nil) async throws -> FetchResult {
        let bytes: [UInt8]
        do {
            bytes = try await S3Client(settings: settings).get(key: uploader.metaKey(name))
        } catch let error as S3Error where error.message.hasPrefix("HTTP 404") {
            return .missing
        }
        let meta: WalArchiveMeta
        do {
            meta = try WalArchiveMeta.decode(bytes)
        } catch {
            throw WalArchiveError("\(address(name)).meta does not decode (\(error)): the bucket's record of \(name) is damaged")
        }
        guard meta.name == name else { throw WalArchiveError("\(address(name)).meta describes \(meta.name), not \(name)") }
        try await fetch(meta: meta, to: destination, identities: identities)
        return .fetched
    }

    /// The `.gz` into a hidden file beside `destination`, inflated and checked, removed.
    func fetch(meta: WalArchiveMeta, to destination: String, identities: [AgeIdentity]? = nil) async throws {
        // The suffix tells the inflater whether to decrypt.
        let suffix = meta.file.hasSuffix(".age") ? ".gz.age" : ".gz"
        let temp = FileSystem.directory(of: destination) + "/." + FileSystem.lastComponent(of: destination) + ".s3-\(getpid())" + suffix
        defer { unlink(temp) }
        do {
            try await S3Client(settings: settings).download(key: uploader.key(for: meta), to: temp)
        } catch let error as S3Error where error.message.hasPrefix("HTTP 404") {
            throw WalArchiveError("\(address(meta.name)) is gone while its .meta is there: the bucket's copy of \(meta.name) is incomplete")
        }
        try await Blocking.run { try WalArchive.inflate(temp, checkedAgainst: meta, to: destination, identities: identities) }
    }

    /// Remote WAL retention: the one decision (`WalRetention.decide`) over the bucket's files,
    /// against the base backups the bucket keeps; the `.meta` goes before its `.gz`. Never
    /// throws: a listing that fails removes nothing and is reported.
    public func prune(bases: [(start: LSN, timeline: UInt32)], dryRun: Bool) async -> WalRetention.Report {
        var report = WalRetention.Report()
        let listing: Listing
        do {
            listing = try await list()
        } catch {
            report.errors.append("listing \(location): \(error)")
            return report
        }
        let names = listing.contents.files.map(\.meta.name) + listing.contents.withoutMeta + listing.contents.withoutData + listing.unreadableMetas
        let decision = WalRetention.decide(names: names, bases: bases, segmentSize: listing.chain.segmentSize)
        report.keepFrom = decision.keepFrom
        let client = S3Client(settings: settings)
        for name in decision.remove {
            if !dryRun {
                do {
                    try await client.delete(key: uploader.metaKey(name))
                    try await client.delete(key: uploader.key(name))
                    try await client.delete(key: uploader.key(name) + ".age")
                } catch {
                    report.errors.append("\(address(name)): \(error)")
                    continue
                }
            }
            report.removed.append(name)
            report.freedBytes += listing.sizes[name] ?? 0
        }
        return report
    }

    /// `verify --wal --remote`: the bucket's chain, continuous per timeline from the oldest
    /// good base backup the bucket keeps; each object's size against its `.meta`; each
    /// `.meta` against the local upload marker (a different SHA-256 is a duplicate with other
    /// content under the same name); leftovers named.
    public func verify(bases: [(start: LSN, timeline: UInt32, label: String)]) async throws -> WalVerification.Result {
        let listing = try await list()
        var result = WalVerification.Result()
        let local = WalArchive(backupDir: backupDir)
        let markers = await Blocking.run { WalUploadMarker.all(in: local) }
        for file in listing.contents.files {
            let name = file.meta.name
            if let size = listing.sizes[name], size != file.meta.sizeBytes {
                result.problems.append("\(name): \(address(name)) is \(size) bytes, its .meta says \(file.meta.sizeBytes) (the object changed or is incomplete)")
            }
            if let marker = markers[name], marker.sha256 != file.meta.sha256 {
                result.problems.append("duplicate with different content: \(name) in the bucket (SHA-256 \(file.meta.sha256.prefix(12))…) is not the copy uploaded from here (\(marker.sha256.prefix(12))…)")
            }
        }
        for name in listing.contents.withoutMeta { result.problems.append("\(name).gz has no .meta in the bucket (an interrupted upload; the next upload run replaces it)") }
        for name in listing.contents.withoutData { result.problems.append("\(name).meta has no \(name).gz in the bucket: the segment is gone") }
        for name in listing.unreadableMetas { result.problems.append("\(name).meta in the bucket does not decode") }
        result.problems += listing.historyProblems
        let (problems, reached) = WalVerification.checkChains(listing.chain, starts: bases.sorted { $0.start < $1.start }.map { ($0.start, $0.timeline, $0.label) })
        result.problems += problems
        let segments = listing.contents.segments.count
        result.summary = "\(location): \(segments) segments, \(listing.contents.files.count - segments) history/backup files checked; "
            + (reached.isEmpty ? "no chain" : reached.joined(separator: "; "))
        return result
    }

    /// The start of each good base backup in the bucket, with its name.
    public static func bases(_ backups: [RemoteBackup]) -> [(start: LSN, timeline: UInt32, label: String)] {
        backups.filter { $0.entry.kind == .postgresBase && $0.entry.isGood }.compactMap { b in
            guard let meta = b.entry.meta, let start = WalRetention.start(of: meta) else { return nil }
            return (start.start, start.timeline, b.entry.name)
        }
    }
}
