import AgeEncryption
import BackstopCore
import BackupCatalog
import BackupPipeline
import Foundation

/// `backstop verify --wal`: every archived file inflated and checked against its `.meta`
/// (both SHA-256s), leftovers and conflicting duplicates reported, and the chain from the
/// oldest kept base backup's start LSN to the newest segment proved continuous on every
/// timeline (the `.history` files followed). Gaps are named segment by segment.
public struct WalVerification: Sendable {
    public struct Result: Sendable {
        public var ok: Bool { problems.isEmpty }
        public var problems: [String] = []
        public var summary: String = ""
        public init() {}
    }

    public let archive: WalArchive
    public let backupDir: String

    /// - Parameter identities: the keys for `.gz.age` segments; without them those get the
    ///   checksum and header check only, and the summary says so.
    public init(backupDir: String, identities: [AgeIdentity]? = nil) {
        self.backupDir = backupDir
        archive = WalArchive(backupDir: backupDir, identities: identities)
    }

    /// Blocking (reads every segment).
    public func run() -> Result {
        var result = Result()
        let chain = WalChain.load(archive)
        let contents = chain.contents
        var keyless = 0
        for file in contents.files {
            let path = archive.storedPath(file.meta)
            do {
                if path.hasSuffix(".age") && archive.identities == nil {
                    // Without the key: the stored checksum and the age header only.
                    let digest = try FileDigest.sha256(path: path)
                    if digest.sha256 != file.meta.sha256 || digest.sizeBytes != file.meta.sizeBytes {
                        result.problems.append("\(file.meta.name): checksum differs from its .meta (the archived file changed)")
                    }
                    _ = try AgeFile.header(path: path)
                    keyless += 1
                    continue
                }
                let check = try SegmentInflater.inflate(path, identities: archive.identities)
                if check.gzSHA256 != file.meta.sha256 || check.walSHA256 != file.meta.walSHA256 {
                    result.problems.append("\(file.meta.name): checksum differs from its .meta (the archived file changed)")
                }
            } catch {
                result.problems.append("\(file.meta.name): \(error)")
            }
        }
        for name in contents.withoutMeta { result.problems.append("\(name).gz has no .meta (an interrupted store; the next push or receive of it replaces it)") }
        for name in contents.withoutData { result.problems.append("\(name).meta has no \(name).gz: the segment is gone") }
        for name in contents.conflicts { result.problems.append("duplicate with different content set aside: .conflicts/\(name)") }
        let bases = BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase]).filter(\.isGood).sorted { $0.startedAt < $1.startedAt }
        let starts: [(LSN, UInt32, String)] = bases.compactMap { base in
            guard let meta = try? BackupMeta.read(forData: base.path), let lsn = meta.startLSN.flatMap({ LSN($0) }), let tli = meta.timeline else { return nil }
            return (lsn, UInt32(tli), FileSystem.lastComponent(of: base.path))
        }
        let (problems, reached) = Self.checkChains(chain, starts: starts)
        result.problems += problems
        result.summary = "\(contents.segments.count) segments, \(contents.files.count - contents.segments.count) history/backup files checked; " +
            (reached.isEmpty ? "no chain" : reached.joined(separator: "; "))
        if keyless > 0 {
            result.summary += "; \(keyless) encrypted segment\(keyless == 1 ? "" : "s"): checksum and age header only, content NOT checked: decrypting needs the key (set BACKUP_ENCRYPTION_IDENTITY_FILE)"
        }
        return result
    }

    /// The chain check of every timeline with segments: continuous from the oldest base backup
    /// (in `starts`: start LSN, timeline, a label) the timeline descends from — or, without
    /// one, from its oldest segment — to its newest segment. Shared by the bucket's check.
    public static func checkChains(_ chain: WalChain, starts: [(LSN, UInt32, String)]) -> (problems: [String], reached: [String]) {
        let contents = chain.contents
        var problems: [String] = []
        var reached: [String] = []
        for timeline in chain.timelines {
            // The oldest base backup this timeline descends from (or, without one, its oldest segment).
            let path = chain.path(to: timeline).path?.map(\.timeline) ?? [timeline]
            let from = starts.first { path.contains($0.1) }
                ?? contents.segments.first { $0.segment.timeline == timeline }.map { ($0.segment.startLSN, timeline, "its oldest segment") }
            guard let (lsn, tli, label) = from else { continue }
            let report = chain.check(from: lsn, timeline: tli, target: timeline)
            problems += report.problems.map { "timeline \(timeline): \($0)" }
            for name in report.missing { problems.append("gap: \(name) is missing (timeline \(timeline), needed from \(label))") }
            if let last = report.last { reached.append("timeline \(timeline): \(label) \(lsn) → \(last.name)") }
        }
        return (problems, reached)
    }
}
