#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupJobs
import Foundation
import OffsiteCopies
import S3
import WalArchive

/// A point-in-time restore from the bucket, for when the local base backups or WAL are gone:
/// the bucket's good base backups and its copy of the WAL archive make the plan's `Source`
/// (so the chain is proved — gaps named — before anything is downloaded or written); the
/// chosen base backup is then downloaded into a private folder of BACKUP_DIR
/// (`.restore-download/<stamp>-<pid>/`, mode 0700, removed afterwards) and checked against its
/// `.meta` by the restore itself. Recovery reads the WAL through `backstop wal fetch`, which
/// falls back to the bucket (the S3 settings reach it through the environment, never argv).
final class RemotePointInTimeSource: Sendable {
    let settings: S3Settings
    let backupDir: String
    let backups: [RemoteBackup]
    let source: PointInTimeRestore.Source
    let folder: String

    /// Lists the bucket's base backups and WAL (throws when the bucket cannot be read).
    init(settings: S3Settings, backupDir: String) async throws {
        self.settings = settings
        self.backupDir = backupDir
        let listed = try await RemoteCatalog(settings: settings, backupDir: backupDir).list(kinds: [.postgresBase]).backups
        backups = listed.filter { $0.entry.isGood && !$0.isLegacyArchive && $0.entry.meta != nil && $0.entry.isDirectory }
        let wal = RemoteWalArchive(settings: settings, backupDir: backupDir)
        let listing = try await wal.list()
        source = PointInTimeRestore.Source(
            bases: backups.compactMap { b in b.entry.meta.map { PointInTimeRestore.Candidate(path: b.entry.path, meta: $0, startedAt: b.entry.startedAt) } },
            chain: listing.chain, location: wal.location)
        folder = backupDir + "/.restore-download/" + WallClock.fileStamp(WallClock.now()) + "-\(getpid())"
    }

    func backup(for plan: PointInTimeRestore.Plan) -> RemoteBackup? { backups.first { $0.entry.path == plan.basePath } }

    /// What a dry run adds before the local steps.
    func dryRunSteps(_ plan: PointInTimeRestore.Plan) -> [String] {
        guard let b = backup(for: plan) else { return [] }
        return ["download \(b.entry.path)/ (\(b.dataKeys.count) objects, \(HumanBytes.format(b.storedBytes))) into \(folder)/\(b.entry.name) (mode 0700, removed afterwards)",
                "recovery reads the WAL from \(source.location) through restore_command (backstop wal fetch falls back to the bucket)"]
    }

    /// Downloads the chosen base backup; returns the plan pointing at the local copy.
    func download(_ plan: PointInTimeRestore.Plan) async throws -> PointInTimeRestore.Plan {
        guard let b = backup(for: plan) else { throw WalArchiveError("\(plan.basePath) is not a base backup in the bucket") }
        if let refusal = try await RemoteArchive(settings: settings).refusal(key: b.dataKeys.first ?? b.key) {
            throw WalArchiveError(refusal + ". Nothing was changed.")
        }
        try FileSystem.createDirectory(FileSystem.directory(of: folder), mode: 0o700)
        try FileSystem.createDirectory(folder, mode: 0o700)
        let local = folder + "/" + b.entry.name
        try FileSystem.createDirectory(local, mode: 0o700)
        let client = S3Client(settings: settings)
        let strip = b.key + "/"
        for key in b.dataKeys where key.hasPrefix(strip) {
            let relative = String(key.dropFirst(strip.count))
            guard !relative.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
                throw WalArchiveError("s3://\(settings.bucket)/\(key): a key that would leave the download folder; refused. Nothing was changed.")
            }
            try FileSystem.createDirectory(FileSystem.directory(of: local + "/" + relative), mode: 0o700)
            try await client.download(key: key, to: local + "/" + relative)
        }
        var localPlan = plan
        localPlan.basePath = local
        return localPlan
    }

    /// RecoveryStart's copy of one WAL file (run as root): the same `backstop wal fetch`
    /// restore_command runs, local archive first, then the bucket.
    func fetchFile(backstopPath: String, jobSettings: PostgresJobSettings) -> @Sendable (String, String) throws -> Void {
        let backupDir = self.backupDir
        return { name, destination in
            _ = try ChildProcess.output(backstopPath, ["wal", "fetch", "--backup-dir", backupDir, name, destination], scratchDirectory: jobSettings.stateDir)
        }
    }

    /// Removes the download folder (and `.restore-download` when it is empty).
    func remove() {
        try? FileManager.default.removeItem(atPath: folder)
        rmdir(FileSystem.directory(of: folder))
    }
}
