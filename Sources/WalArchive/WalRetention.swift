#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupCatalog
import BackupJobs

/// Retention of the WAL archive: exactly the WAL the kept base backups need stays. A segment
/// (or `.backup` file) whose number is below the start segment of the oldest good base backup
/// still in the catalog is removed — run after the base backups' own retention, so "kept"
/// means what that left. `.history` files are always kept (tiny, and every later timeline's
/// chain needs them). With no good base backup nothing is removed: WAL alone restores nothing,
/// but it is all there is.
public struct WalRetention: Sendable {
    public struct Report: Sendable, Equatable {
        /// The oldest segment kept (the oldest base backup's first), nil when nothing is pruned.
        public var keepFrom: String?
        public var removed: [String] = []
        public var freedBytes: UInt64 = 0
        public var errors: [String] = []
        public init() {}
    }

    public let backupDir: String
    public init(backupDir: String) { self.backupDir = backupDir }

    public func run(dryRun: Bool, log: BackupLog?) -> Report {
        let archive = WalArchive(backupDir: backupDir)
        var report = Report()
        guard FileSystem.isDirectory(archive.directory) else { return report }
        let starts = BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase]).filter(\.isGood).compactMap { base -> (LSN, UInt32)? in
            guard let meta = try? BackupMeta.read(forData: base.path), let lsn = meta.startLSN.flatMap({ LSN($0) }) else { return nil }
            return (lsn, UInt32(meta.timeline ?? 1))
        }
        let contents = archive.contents()
        let size = contents.segments.first?.meta.walBytes ?? WalSegment.defaultSize
        guard let (oldest, timeline) = starts.min(by: { $0.0 < $1.0 }) else { return report }
        let first = oldest.segmentNumber(segmentSize: size)
        report.keepFrom = WalSegment(timeline: timeline, number: first, segmentSize: size).name
        var names = contents.files.map(\.meta.name) + contents.withoutMeta + contents.withoutData
        names.sort()
        for name in names {
            let number: UInt64
            switch WalFileName(name, segmentSize: size) {
            case .segment(let s)?: number = s.number
            case .backupHistory(let s, _)?: number = s.number
            default: continue
            }
            guard number < first else { continue }
            var info = stat()
            let bytes = stat(archive.dataPath(name), &info) == 0 ? UInt64(info.st_size) : 0
            if !dryRun {
                // The .meta first: a .gz left without it is an interrupted store, never a good segment.
                if unlink(archive.metaPath(name)) != 0 && errno != ENOENT { report.errors.append("\(archive.metaPath(name)): \(String(cString: strerror(errno)))"); continue }
                // Both kinds: a segment is stored as .gz or .gz.age (encryption turned on mid-archive).
                let failed = [archive.directory + "/" + name + ".gz", archive.directory + "/" + name + ".gz.age"].filter { unlink($0) != 0 && errno != ENOENT }
                if let path = failed.first { report.errors.append("\(path): \(String(cString: strerror(errno)))"); continue }
            }
            report.removed.append(name)
            report.freedBytes += bytes
        }
        if !dryRun {
            FileSystem.syncDirectory(archive.directory)
            if !report.removed.isEmpty {
                log?.info("cleanup wal: removed \(report.removed.count) segments before \(report.keepFrom ?? "?") (the oldest kept base backup starts at \(oldest)), freed \(HumanBytes.format(report.freedBytes))")
            }
        }
        return report
    }
}
