import ArgumentParser
import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupJobs
import BackupPipeline
import WalArchive
import Foundation
import Restore
import S3

/// S3 settings from the environment for the commands that read the bucket.
enum S3Config {
    /// nil when BACKUP_S3_BUCKET is unset; a bad value is a `ValidationError` naming it.
    static func optional(_ env: [String: String]) throws -> S3Settings? {
        try validated { try S3Settings(environment: env) }
    }

    /// The settings, or a clear message and exit 1 when S3 is not configured.
    static func required(_ env: [String: String], to what: String) throws -> S3Settings {
        guard let settings = try optional(env) else {
            FileHandle.standardError.write(Data("backstop: S3 is not configured, so there is nothing to \(what): set BACKUP_S3_BUCKET (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, AWS_PROFILE or the instance role; BACKUP_S3_ENDPOINT for an S3-compatible store).\n".utf8))
            throw ExitCode(1)
        }
        return settings
    }
}

/// `s3://bucket/key` on the command line.
struct S3Address: Sendable, Equatable {
    var bucket: String
    var key: String

    init?(_ text: String) {
        guard text.hasPrefix("s3://") else { return nil }
        let rest = text.dropFirst(5)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        bucket = String(rest[..<slash])
        key = String(rest[rest.index(after: slash)...])
        guard !bucket.isEmpty, !key.isEmpty, !key.hasSuffix("/") else { return nil }
    }

    var description: String { "s3://\(bucket)/\(key)" }
    var name: String { FileSystem.lastComponent(of: key) }
}

/// A backup fetched from the bucket for a restore: data and `.meta` in a private folder
/// inside BACKUP_DIR (`.restore-download/<stamp>-<pid>/`, mode 0700, hidden so no listing or
/// retention ever sees it), restored from there as a local file, removed afterwards.
final class RemoteRestoreSource: Sendable {
    let address: S3Address
    let settings: S3Settings
    let folder: String
    var localPath: String { folder + "/" + address.name }

    /// Checks the address (configured bucket, a backup name of the right kind) without any
    /// network call. Exits 1 with the reason when it is refused.
    init(_ text: String, environment env: [String: String], backupDir: String, kind: BackupKind) throws {
        guard let address = S3Address(text) else {
            FileHandle.standardError.write(Data("backstop: \(text) is not an s3://bucket/key address of a backup (run backstop list --remote to see them). Nothing was changed.\n".utf8))
            throw ExitCode(1)
        }
        let settings = try S3Config.required(env, to: "restore from")
        guard address.bucket == settings.bucket else {
            FileHandle.standardError.write(Data("backstop: refusing \(address.description): the bucket \(address.bucket) is not BACKUP_S3_BUCKET (\(settings.bucket)); only backups in the configured bucket are restored. Nothing was changed.\n".utf8))
            throw ExitCode(1)
        }
        if RemoteCatalog.classifyLegacyArchive(address.name) != nil {
            FileHandle.standardError.write(Data("backstop: \(RemoteCatalog(settings: settings, backupDir: nil).legacyArchiveAdvice(key: address.key)). Nothing was changed.\n".utf8))
            throw ExitCode(1)
        }
        guard let (found, _, _) = BackupCatalog.classify(address.name), found == kind else {
            FileHandle.standardError.write(Data("backstop: \(address.description) is not a \(kind.rawValue) backup (expected \(kind == .redis ? "redis_YYYYMMDD_HHMMSS.rdb.gz" : "<db>_full_YYYYMMDD_HHMMSS.sql.gz")). Nothing was changed.\n".utf8))
            throw ExitCode(1)
        }
        self.address = address
        self.settings = settings
        folder = backupDir + "/.restore-download/" + WallClock.fileStamp(WallClock.now()) + "-\(getpid())"
    }

    /// Downloads the `.meta` first (a data object without one is an incomplete upload and is
    /// refused before the large transfer), then the data; `extra` names more backups from the
    /// same folder (a globals file). Returns the local path of the data.
    func download(extra: [String] = []) async throws -> String {
        try FileSystem.createDirectory(FileSystem.directory(of: folder), mode: 0o700)
        try FileSystem.createDirectory(folder, mode: 0o700)
        let client = S3Client(settings: settings)
        let keyFolder = FileSystem.directory(of: address.key)
        for name in [address.name] + extra {
            let key = address.key.contains("/") ? keyFolder + "/" + name : name
            do {
                try await client.download(key: key + ".meta", to: folder + "/" + name + ".meta")
            } catch let error as S3Error where error.message.hasPrefix("HTTP 404") {
                guard let legacy = try await RemoteCatalog(settings: settings, backupDir: nil).legacyMeta(forKey: key) else {
                    throw RestoreError("s3://\(settings.bucket)/\(key) has no .meta in the bucket (an incomplete upload, not a backup to restore)", nothingChanged: true)
                }
                try AtomicFile.write(legacy, to: folder + "/" + name + ".meta", mode: 0o600)
            }
            if let refusal = try await RemoteArchive(settings: settings).refusal(key: key) { throw RestoreError(refusal, nothingChanged: true) }
            try await client.download(key: key, to: folder + "/" + name)
        }
        return localPath
    }

    /// For a dry run that must read the snapshot's header (the RDB version): the first 64 KiB
    /// of the object into the private folder (removed by `remove()`), never the whole object.
    func downloadHead(bytes: UInt64 = 64 << 10) async throws {
        try FileSystem.createDirectory(FileSystem.directory(of: folder), mode: 0o700)
        try FileSystem.createDirectory(folder, mode: 0o700)
        try await S3Client(settings: settings).download(key: address.key, to: localPath, firstBytes: bytes)
    }

    /// For a dry run: the `.meta` only (a small GET, nothing written), as the check that will
    /// be made after the download.
    func preview(name: String? = nil, kind: BackupKind) async throws -> RestoreSource.Checked {
        let name = name ?? address.name
        let key = address.key.contains("/") ? FileSystem.directory(of: address.key) + "/" + name : name
        let localPath = folder + "/" + name
        let bytes: [UInt8]
        do {
            bytes = try await S3Client(settings: settings).get(key: key + ".meta")
        } catch let error as S3Error where error.message.hasPrefix("HTTP 404") {
            guard let legacy = try await RemoteCatalog(settings: settings, backupDir: nil).legacyMeta(forKey: key) else {
                throw RestoreError("s3://\(settings.bucket)/\(key) has no .meta in the bucket (not uploaded, or an incomplete upload: not a backup to restore)", nothingChanged: true)
            }
            bytes = legacy
        }
        if let refusal = try await RemoteArchive(settings: settings).refusal(key: key) { throw RestoreError(refusal, nothingChanged: true) }
        let meta = try BackupMeta.decode(bytes)
        guard meta.isCompleted else {
            throw RestoreError("\(address.description): its .meta does not say completed; not a backup to restore", nothingChanged: true)
        }
        let (_, nameTarget, stamp) = BackupCatalog.classify(name) ?? (kind, "", "")
        let entry = CatalogEntry(path: localPath, name: name, kind: kind,
                                 target: BackupCatalog.target(kind: kind, nameTarget: nameTarget, meta: meta),
                                 startedAt: meta.startedAt.flatMap(WallClock.parseRFC3339) ?? WallClock.parseFileStamp(stamp) ?? 0,
                                 finishedAt: nil, sizeBytes: meta.sizeBytes ?? 0, meta: meta, state: BackupCatalog.state(of: meta), isDirectory: false)
        let verification = GzipVerification(path: localPath, compressedBytes: meta.sizeBytes ?? 0,
                                             uncompressedBytes: meta.uncompressedBytes ?? 0, sha256: meta.sha256 ?? "", members: 1)
        return RestoreSource.Checked(entry: entry, verification: verification,
                                     warning: meta.sha256 == nil ? "s3://\(settings.bucket)/\(key): its .meta has no SHA-256 (a backup of the old scripts); only the gzip stream will be checked" : nil)
    }

    /// A local plan with its "checked" step replaced by the download and the checks.
    func dryRunSteps(_ steps: [String], checked: RestoreSource.Checked) -> [String] {
        let size = checked.entry.meta?.sizeBytes.map { " (\(HumanBytes.format($0)))" } ?? ""
        let remote = [
            "download \(address.description)\(size) and its .meta into \(folder) (mode 0700, removed afterwards)",
            "check \(localPath): gzip stream whole, SHA-256 equal to the .meta's \(checked.verification.sha256.isEmpty ? "(none recorded)" : checked.verification.sha256); a bad copy is refused with nothing changed",
        ]
        var out: [String] = []
        var replaced = false
        for step in steps {
            if !replaced, step.hasPrefix("checked ") {
                out += remote
                replaced = true
            } else {
                out.append(step)
            }
        }
        if !replaced { out = remote + out }
        out.append("remove \(folder)")
        return out
    }

    /// Removes the download folder (and `.restore-download` when it is empty).
    func remove() {
        try? FileManager.default.removeItem(atPath: folder)
        rmdir(FileSystem.directory(of: folder))
    }
}
