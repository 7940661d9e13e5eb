#if canImport(Glibc)
import Glibc
#endif
import AgeEncryption
import BackstopCore
import BackupCatalog
import BackupJobs
import BackupPipeline
import Foundation

/// Where a point-in-time restore stops.
public enum RecoveryTarget: Sendable, Equatable {
    /// `recovery_target_time` (seconds since the epoch; the text is what the operator gave, RFC 3339 with a zone).
    case time(Double, String)
    case lsn(LSN)
    case xid(String)
    case name(String)
    /// The end of the base backup (the first consistent point).
    case immediate
    /// The end of the archive (every segment, and the one being received).
    case latest
}

/// What the operator asked for.
public struct PointInTimeOptions: Sendable {
    public var target: RecoveryTarget
    /// `recovery_target_timeline`: a number, or nil for `latest`.
    public var timeline: UInt32?
    /// promote, pause or shutdown.
    public var action: String = "promote"
    public var dataDirectory: String
    /// `wal_STAMP`: this base backup instead of the newest before the target.
    public var fromBase: String?
    /// The backstop binary written into restore_command.
    public var backstopPath: String
    /// `BACKUP_WAL_RECEIVE_DIR` (nil: the archive's `.receiving/`): where the `.partial` being
    /// received is read; written into restore_command when set.
    public var receiveDirectory: String?

    public init(target: RecoveryTarget, dataDirectory: String, backstopPath: String) {
        self.target = target
        self.dataDirectory = dataDirectory
        self.backstopPath = backstopPath
    }
}

/// A restore of a base backup plus archived WAL into an empty data directory, with
/// `recovery.signal` and the recovery settings in `postgresql.auto.conf` (PostgreSQL 12+).
///
/// Order of work, so a refusal never leaves anything behind: choose the newest base backup
/// before the target, prove the WAL chain from its start LSN to the target (gaps named),
/// check its files' SHA-256 against the `.meta` and that the data directory is empty or
/// absent — all before the first write. Then unpack the tars, run pg_verifybackup on the
/// result (removing what was unpacked if it fails), write the settings. Blocking.
public struct PointInTimeRestore: Sendable {
    public struct Plan: Sendable {
        public var basePath: String
        public var baseMeta: BackupMeta
        public var chain: WalChain.Report
        public var settings: [String]
        public var allowPartial: Bool
        /// Where the `.partial` is read (`PointInTimeOptions.receiveDirectory`).
        public var receiveDirectory: String?
        /// The keys for an encrypted base backup or `.gz.age` segments in the chain (checked
        /// to open them while planning); nil when nothing in the plan is encrypted.
        public var identities: [AgeIdentity]?

        /// The one file of an encrypted base backup, when this one is.
        public var encryptedTar: String? {
            let path = basePath + "/" + PostgresBaseBackup.encryptedTarName
            return FileSystem.exists(path) ? path : nil
        }
    }

    public let jobSettings: PostgresJobSettings
    public let options: PointInTimeOptions
    public let say: @Sendable (String) -> Void
    /// SIGTERM/SIGINT of the command: `run` stops at its next step (its children are stopped
    /// by the signal handler) and removes what it unpacked.
    public var cancellation: JobCancellation?

    public init(jobSettings: PostgresJobSettings, options: PointInTimeOptions, say: @escaping @Sendable (String) -> Void) {
        self.jobSettings = jobSettings
        self.options = options
        self.say = say
    }

    struct Stopped: Error, CustomStringConvertible {
        var description: String { "stopped (signal)" }
    }

    private func checkNotCancelled() throws {
        if cancellation?.isCancelled == true { throw Stopped() }
    }

    /// Removes the data directory `run` built, after a stop or a failed start: its contents,
    /// and the folder itself when `run` created it (`existedBefore` false). Only for a folder
    /// `run` was given empty or absent: what is there is this restore's.
    public func discard(existedBefore: Bool) {
        let dir = options.dataDirectory
        for name in (try? FileSystem.list(dir)) ?? [] { try? FileManager.default.removeItem(atPath: dir + "/" + name) }
        if !existedBefore { rmdir(dir) }
    }

    private var archive: WalArchive { WalArchive(backupDir: jobSettings.backupDir, receiveDirectory: options.receiveDirectory) }

    /// A base backup a plan may choose: where it is (a local folder, or the s3:// address of a
    /// copy in the bucket, downloaded before `run`) and its `.meta`.
    public struct Candidate: Sendable {
        public var path: String
        public var meta: BackupMeta
        public var startedAt: Double
        public init(path: String, meta: BackupMeta, startedAt: Double) {
            self.path = path
            self.meta = meta
            self.startedAt = startedAt
        }
    }

    /// Where a plan takes its base backups and WAL from: the local catalog and archive, or the
    /// bucket's copies (`location` names it in messages).
    public struct Source: Sendable {
        public var bases: [Candidate]
        public var chain: WalChain
        public var location: String
        public init(bases: [Candidate], chain: WalChain, location: String) {
            self.bases = bases
            self.chain = chain
            self.location = location
        }
    }

    /// The good base backups of the local catalog and the local archive's chain.
    public func localSource() -> Source {
        let bases = BackupCatalog(backupDir: jobSettings.backupDir).list(kinds: [.postgresBase]).filter(\.isGood).compactMap { base -> Candidate? in
            guard let meta = try? BackupMeta.read(forData: base.path) else { return nil }
            return Candidate(path: base.path, meta: meta, startedAt: base.startedAt)
        }
        return Source(bases: bases, chain: WalChain.load(archive), location: archive.directory)
    }

    /// Chooses the base backup and proves the chain; throws (nothing touched) on a gap.
    public func plan(from given: Source? = nil) throws -> Plan {
        let source = given ?? localSource()
        let bases = source.bases.sorted { $0.startedAt > $1.startedAt }
        var chosen: (String, BackupMeta)?
        for base in bases {
            let meta = base.meta
            guard meta.startLSN != nil, meta.timeline != nil else { continue }
            let name = FileSystem.lastComponent(of: base.path)
            if let wanted = options.fromBase {
                if name == wanted { chosen = (base.path, meta) }
                continue
            }
            let finished = meta.finishedAt.flatMap { WallClock.parseRFC3339($0) } ?? base.startedAt
            switch options.target {
            case .time(let t, _): if finished > t { continue }
            case .lsn(let lsn): if let end = meta.endLSN.flatMap({ LSN($0) }), end > lsn { continue }
            default: break
            }
            chosen = (base.path, meta)
            break
        }
        guard let (basePath, meta) = chosen else {
            let place = given?.location ?? jobSettings.postgresDir
            if let wanted = options.fromBase { throw WalArchiveError("no good base backup named \(wanted) in \(place) (backstop list shows them)") }
            throw WalArchiveError("no good base backup in \(place) ends before the target; take one with `backstop backup postgres incremental`. Nothing was changed.")
        }
        guard let start = meta.startLSN.flatMap({ LSN($0) }), let tli = meta.timeline.map({ UInt32($0) }) else {
            throw WalArchiveError("\(basePath).meta has no start LSN or timeline")
        }
        let chain = source.chain
        let size = chain.segmentSize
        var through: UInt64?
        var target = options.timeline
        var allowPartial = false
        switch options.target {
        case .immediate:
            through = (meta.endLSN.flatMap { LSN($0) } ?? start).segmentNumber(segmentSize: size)
            target = target ?? tli
        case .lsn(let lsn):
            through = lsn.segmentNumber(segmentSize: size)
        case .time(let t, _):
            // The first segment archived at or after T holds T's commits (or the partial does).
            through = chain.contents.segments.first { $0.meta.archivedAtSeconds >= t && $0.segment.number >= start.segmentNumber(segmentSize: size) }?.segment.number
            allowPartial = through == nil
        case .latest, .xid, .name:
            allowPartial = true
        }
        let report = chain.check(from: start, timeline: tli, target: target, through: through, allowPartial: allowPartial)
        guard report.isContinuous else {
            let what = report.missing.isEmpty ? report.problems.joined(separator: "; ")
                : "the WAL chain from \(FileSystem.lastComponent(of: basePath)) (\(start), timeline \(tli)) has a gap: \(report.missing.prefix(5).joined(separator: ", ")) \(report.missing.count == 1 ? "is" : "are") missing from \(source.location)"
            throw WalArchiveError("\(what). Nothing was changed. Restore to a point before the gap (--to-lsn), or from another base backup (--from-base).")
        }
        // Encrypted files need the key before anything is written: a missing or wrong one is
        // refused here, naming BACKUP_ENCRYPTION_IDENTITY_FILE.
        // The chain's own records say which files are encrypted (local or in the bucket); the
        // key is proved on the local ones here, on a downloaded base backup before it is unpacked.
        let metas = Dictionary(chain.contents.files.map { ($0.meta.name, $0.meta) }) { a, _ in a }
        let encryptedSegment = report.segments.lazy.compactMap { metas[$0.name] }.first { $0.file.hasSuffix(".age") }
        let wal = archive
        var identities: [AgeIdentity]?
        let encryptedBase = meta.encryption == "age" ? basePath + "/" + PostgresBaseBackup.encryptedTarName : nil
        for path in [encryptedBase, encryptedSegment.map { wal.storedPath($0) }].compactMap({ $0 }) {
            let keys = try identities ?? ArchiveKeys.identities(jobSettings, for: path)
            if FileSystem.exists(path) { try ArchiveKeys.check(keys, open: path) }
            identities = keys
        }
        // restore_command runs in the restored server, perhaps started later by hand: it is
        // told where the key is (a path, not a secret) when the chain holds encrypted segments.
        let identityArgument = encryptedSegment != nil ? jobSettings.encryption.identityFile.map { " --identity \($0)" } ?? "" : ""
        // A receive folder outside BACKUP_DIR is named too: the restored server's environment
        // may not have BACKUP_WAL_RECEIVE_DIR.
        let receiveArgument = allowPartial ? options.receiveDirectory.map { " --receive-dir \($0)" } ?? "" : ""
        var settings = ["restore_command = '\(options.backstopPath) wal fetch --backup-dir \(jobSettings.backupDir)\(identityArgument)\(allowPartial ? " --partial" : "")\(receiveArgument) %f %p'"]
        switch options.target {
        case .time(let t, _):
            // A numeric zone: PostgreSQL reads postgresql.auto.conf before its zone
            // abbreviations are loaded, so "Z" (or "CET") would be refused at start-up.
            let text = WallClock.rfc3339(t, fractional: t != t.rounded(.down)).replacingOccurrences(of: "T", with: " ")
                .replacingOccurrences(of: "Z", with: "+00")
            settings.append("recovery_target_time = '\(text)'")
        case .lsn(let lsn): settings.append("recovery_target_lsn = '\(lsn)'")
        case .xid(let xid): settings.append("recovery_target_xid = '\(xid)'")
        case .name(let name): settings.append("recovery_target_name = '\(name.replacingOccurrences(of: "'", with: "''"))'")
        case .immediate: settings.append("recovery_target = 'immediate'")
        case .latest: break
        }
        settings.append("recovery_target_timeline = '\(options.timeline.map { String($0) } ?? (options.target == .immediate ? "current" : "latest"))'")
        if options.target != .latest { settings.append("recovery_target_action = '\(options.action)'") }
        return Plan(basePath: basePath, baseMeta: meta, chain: report, settings: settings, allowPartial: allowPartial,
                    receiveDirectory: options.receiveDirectory, identities: identities)
    }

    /// What a dry run prints.
    public func describe(_ plan: Plan) -> [String] {
        let first = plan.chain.segments.first?.name ?? "-", last = plan.chain.segments.last?.name ?? "-"
        return ["base backup \(plan.basePath) (start \(plan.baseMeta.startLSN ?? "?"), timeline \(plan.baseMeta.timeline ?? 0), finished \(plan.baseMeta.finishedAt ?? "?"))",
                "WAL: \(plan.chain.segments.count) segments \(first) … \(last) continuous\(plan.chain.partial.map { " (the last from \($0), being received)" } ?? "")",
                plan.encryptedTar != nil
                    ? "check base.tar.gz.age against its .meta, decrypt and unpack it (data, WAL, backup_manifest) into \(options.dataDirectory) (must be empty), pg_verifybackup there"
                    : "check the base backup's files against its .meta, unpack base.tar.gz and pg_wal.tar.gz into \(options.dataDirectory) (must be empty), pg_verifybackup",
                "write \(options.dataDirectory)/recovery.signal and append to postgresql.auto.conf:"] + plan.settings.map { "    \($0)" }
    }

    /// Unpacks and writes the recovery settings. The data directory must be empty or absent.
    public func run(_ plan: Plan) throws {
        let dir = options.dataDirectory
        if FileSystem.exists(dir) {
            guard FileSystem.isDirectory(dir), ((try? FileSystem.list(dir)) ?? ["?"]).isEmpty else {
                throw WalArchiveError("\(dir) is not empty: a restore never writes over a data directory. Move it away (mv \(dir) \(dir).old) and run again. Nothing was changed.")
            }
        }
        for file in plan.baseMeta.files ?? [] {
            let digest = try FileDigest.sha256(path: plan.basePath + "/" + file.name)
            guard digest.sha256 == file.sha256 else {
                throw WalArchiveError("\(plan.basePath)/\(file.name) does not match its .meta (SHA-256 differs): the base backup is damaged. Nothing was changed.")
            }
        }
        if cancellation?.isCancelled == true {
            throw WalArchiveError("stopped before anything was written into \(dir). Nothing was changed.")
        }
        say("base backup files match their .meta: \(plan.basePath)")
        // A downloaded encrypted base backup: the key proved before the first write.
        var baseKeys: [AgeIdentity]?
        if let tar = plan.encryptedTar {
            baseKeys = try plan.identities ?? ArchiveKeys.identities(jobSettings, for: tar)
            try ArchiveKeys.check(baseKeys ?? [], open: tar)
        }
        let created = !FileSystem.exists(dir)
        try FileSystem.createDirectory(dir, mode: 0o700)
        _ = chmod(dir, 0o700)
        do {
            let manifest: String
            if let tar = plan.encryptedTar, let identities = baseKeys {
                try unpackEncrypted(tar, identities: identities, into: dir)
                manifest = dir + "/backup_manifest"
                say("decrypted and unpacked \(PostgresBaseBackup.encryptedTarName) into \(dir) (no plaintext written elsewhere)")
            } else {
                _ = try ChildProcess.output("tar", ["-xzf", plan.basePath + "/base.tar.gz", "-C", dir], scratchDirectory: jobSettings.stateDir)
                if FileSystem.exists(plan.basePath + "/pg_wal.tar.gz") {
                    try FileSystem.createDirectory(dir + "/pg_wal", mode: 0o700)
                    _ = try ChildProcess.output("tar", ["-xzf", plan.basePath + "/pg_wal.tar.gz", "-C", dir + "/pg_wal"], scratchDirectory: jobSettings.stateDir)
                }
                manifest = plan.basePath + "/backup_manifest"
                say("unpacked base.tar.gz and pg_wal.tar.gz into \(dir)")
            }
            if access(jobSettings.program("pg_verifybackup"), X_OK) == 0 || jobSettings.binDirectory == nil {
                _ = try ChildProcess.output(jobSettings.program("pg_verifybackup"), ["--manifest-path", manifest, dir],
                                            scratchDirectory: jobSettings.stateDir)
                say("pg_verifybackup: \(dir) matches the backup manifest")
            }
            try checkNotCancelled()
            try AtomicFile.write("", to: dir + "/recovery.signal", mode: 0o600)
            let auto = dir + "/postgresql.auto.conf"
            let existing = (try? FileSystem.read(auto)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let text = existing + "\n# backstop restore from \(FileSystem.lastComponent(of: plan.basePath)) at \(WallClock.rfc3339(WallClock.now()))\n"
                + plan.settings.joined(separator: "\n") + "\n"
            try AtomicFile.write(text, to: auto, mode: 0o600)
            say("wrote recovery.signal and \(plan.settings.count) recovery settings into \(auto)")
        } catch {
            // Only what this restore unpacked is removed: the folder was empty (or absent).
            discard(existedBefore: !created)
            if cancellation?.isCancelled == true {
                throw WalArchiveError("stopped while unpacking into \(dir): what was unpacked was removed\(created ? " with the folder" : ""). Nothing was changed.")
            }
            throw WalArchiveError("restore into \(dir) failed and what it unpacked was removed: \(error)")
        }
    }

    /// Decrypts `tar` (every chunk authenticated before its bytes go on) straight into
    /// `tar -xz` in the target directory: the plaintext exists only there. A failure part way
    /// leaves what was unpacked for `run`'s cleanup to remove.
    private func unpackEncrypted(_ tar: String, identities: [AgeIdentity], into dir: String) throws {
        signal(SIGPIPE, SIG_IGN) // a tar that stops on an error must give EPIPE, not kill us
        let child = try ChildProcess(executable: "tar", arguments: ["-xzf", "-", "-C", dir], captureStdout: false, stdinPipe: true,
                                     scratchDirectory: jobSettings.stateDir)
        do {
            try AgeFile.decrypt(path: tar, identities: identities) { try FileSystem.writeAll(fd: child.stdinFD, $0, path: "tar's input") }
        } catch {
            child.terminate()
            _ = try? child.wait()
            throw WalArchiveError("decrypting \(tar) failed: \(error)")
        }
        child.closeStdin()
        let status = try child.wait()
        guard status == 0 else { throw WalArchiveError("tar exited \(status) unpacking \(tar): \(child.stderrText())") }
    }
}
