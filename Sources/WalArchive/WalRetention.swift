#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupCatalog
import BackupJobs

/// Retention of the WAL archive: exactly the WAL the kept base backups need stays. A segment
/// (or `.backup` file) whose number is below the start segment of the oldest good base backup
/// still kept is removed — run after the base backups' own retention, so "kept" means what
/// that left. `.history` files are always kept (tiny, and every later timeline's chain needs
/// them). With no good base backup nothing is removed: WAL alone restores nothing, but it is
/// all there is. The same decision (`decide`) prunes the local archive and the bucket's.
public struct WalRetention: Sendable {
    public struct Report: Sendable, Equatable {
        /// The oldest segment kept (the oldest base backup's first), nil when nothing is pruned.
        public var keepFrom: String?
        public var removed: [String] = []
        /// Files retention would have removed but kept because they are not in S3 yet (no
        /// upload marker): the next upload sends them, the next cleanup removes them.
        public var notUploaded: [String] = []
        public var freedBytes: UInt64 = 0
        public var errors: [String] = []
        public init() {}
    }

    /// What `decide` says.
    public struct Decision: Sendable, Equatable {
        public var keepFrom: String?
        /// Names to remove, sorted.
        public var remove: [String]
    }

    /// The one rule, pure: of `names` (archived file names), the segments and `.backup` files
    /// numbered below the first segment of the oldest base backup in `bases` (start LSN and
    /// timeline) go; `.history` files, anything unparsable and everything from that segment on
    /// stay. No base backup: nothing goes.
    public static func decide(names: [String], bases: [(start: LSN, timeline: UInt32)], segmentSize: UInt64) -> Decision {
        guard let oldest = bases.min(by: { $0.start < $1.start }) else { return Decision(keepFrom: nil, remove: []) }
        let first = oldest.start.segmentNumber(segmentSize: segmentSize)
        let remove = names.filter { name in
            switch WalFileName(name, segmentSize: segmentSize) {
            case .segment(let s)?: s.number < first
            case .backupHistory(let s, _)?: s.number < first
            default: false
            }
        }.sorted()
        return Decision(keepFrom: WalSegment(timeline: oldest.timeline, number: first, segmentSize: segmentSize).name, remove: remove)
    }

    /// The start LSN and timeline of each good base backup of the local catalog.
    public static func localBases(backupDir: String) -> [(start: LSN, timeline: UInt32)] {
        BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase]).filter(\.isGood).compactMap { base in
            guard let meta = try? BackupMeta.read(forData: base.path) else { return nil }
            return start(of: meta)
        }
    }

    /// A base backup's start, from its `.meta`.
    public static func start(of meta: BackupMeta) -> (start: LSN, timeline: UInt32)? {
        guard let lsn = meta.startLSN.flatMap({ LSN($0) }) else { return nil }
        return (lsn, UInt32(meta.timeline ?? 1))
    }

    public let backupDir: String
    /// S3 is on: a file goes only once its upload marker matches it.
    public let requireUploaded: Bool

    public init(backupDir: String, requireUploaded: Bool = false) {
        self.backupDir = backupDir
        self.requireUploaded = requireUploaded
    }

    public func run(dryRun: Bool, log: BackupLog?) -> Report {
        let archive = WalArchive(backupDir: backupDir)
        var report = Report()
        guard FileSystem.isDirectory(archive.directory) else { return report }
        let contents = archive.contents()
        let size = contents.segments.first?.meta.walBytes ?? WalSegment.defaultSize
        let names = contents.files.map(\.meta.name) + contents.withoutMeta + contents.withoutData
        let decision = Self.decide(names: names, bases: Self.localBases(backupDir: backupDir), segmentSize: size)
        report.keepFrom = decision.keepFrom
        let metas = Dictionary(contents.files.map { ($0.meta.name, $0.meta) }) { a, _ in a }
        let markers = requireUploaded ? WalUploadMarker.all(in: archive) : [:]
        for name in decision.remove {
            // A file with a .meta is removed only when the bucket has these very bytes.
            if requireUploaded, let meta = metas[name], markers[name]?.sha256 != meta.sha256 {
                report.notUploaded.append(name)
                continue
            }
            var info = stat()
            let bytes = stat(archive.dataPath(name), &info) == 0 ? UInt64(info.st_size) : 0
            if !dryRun {
                // The .meta first: a .gz left without it is an interrupted store, never a good segment.
                if unlink(archive.metaPath(name)) != 0 && errno != ENOENT { report.errors.append("\(archive.metaPath(name)): \(String(cString: strerror(errno)))"); continue }
                // Both kinds: a segment is stored as .gz or .gz.age (encryption turned on mid-archive).
                var failure: String?
                for suffix in [".gz", ".gz.age"] {
                    let path: String = archive.directory + "/" + name + suffix
                    if unlink(path) != 0 && errno != ENOENT { failure = "\(path): \(String(cString: strerror(errno)))" }
                }
                if let failure { report.errors.append(failure); continue }
                WalUploadMarker.remove(name, in: archive)
            }
            report.removed.append(name)
            report.freedBytes += bytes
        }
        if !dryRun {
            FileSystem.syncDirectory(archive.directory)
            if !report.removed.isEmpty {
                log?.info("cleanup wal: removed \(report.removed.count) segments before \(report.keepFrom ?? "?") (the oldest kept base backup's first segment), freed \(HumanBytes.format(report.freedBytes))")
            }
            if !report.notUploaded.isEmpty {
                log?.info("cleanup wal: kept \(report.notUploaded.count) segments no kept base backup needs because they are not in S3 yet (\(report.notUploaded.prefix(3).joined(separator: ", "))\(report.notUploaded.count > 3 ? ", …" : "")); they go after their upload")
            }
        }
        return report
    }
}
