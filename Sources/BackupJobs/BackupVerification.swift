import BackstopCore
import BackupCatalog
import BackupPipeline
import Foundation

/// The verdict on one backup.
public struct VerificationResult: Sendable {
    public var entry: CatalogEntry
    /// Empty when the backup is good.
    public var problems: [String]
    /// What was checked, for the report.
    public var checked: [String]
    public var ok: Bool { problems.isEmpty }
}

/// `backstop verify`: every gzip stream inflated to its end, SHA-256 compared with the
/// `.meta`, base backups extracted to a scratch folder and checked against their manifest
/// with `pg_verifybackup`. Blocking.
public struct BackupVerification: Sendable {
    public let settings: PostgresJobSettings

    public init(settings: PostgresJobSettings) { self.settings = settings }

    public func verify(_ entry: CatalogEntry) -> VerificationResult {
        var result = VerificationResult(entry: entry, problems: [], checked: [])
        if entry.state == .incomplete {
            result.problems.append("no completed .meta beside it: an interrupted run or a foreign file, not a backup")
        }
        if entry.isDirectory, entry.meta?.encryption == "age" || FileSystem.exists(entry.path + "/" + PostgresBaseBackup.encryptedTarName) {
            verifyEncryptedBase(entry, &result)
        } else if entry.isDirectory {
            verifyBase(entry, &result)
        } else if entry.path.hasSuffix(".age") {
            verifyEncrypted(entry, &result)
        } else {
            do {
                let v = try GzipVerifier.verify(path: entry.path)
                result.checked.append("gzip ok (\(v.members) member\(v.members == 1 ? "" : "s"), \(HumanBytes.format(v.uncompressedBytes)) uncompressed)")
                if let expected = entry.meta?.sha256 {
                    if expected.lowercased() == v.sha256 {
                        result.checked.append("sha256 matches .meta")
                    } else {
                        result.problems.append("sha256 \(v.sha256) differs from the .meta's \(expected)")
                    }
                } else if entry.state == .legacy {
                    result.checked.append("no sha256 in the (old) .meta: gzip check only")
                }
                if let size = entry.meta?.sizeBytes, size != v.compressedBytes {
                    result.problems.append("size \(v.compressedBytes) bytes differs from the .meta's \(size)")
                }
            } catch {
                result.problems.append("\(error)")
            }
        }
        return result
    }

    private func verifyBase(_ entry: CatalogEntry, _ result: inout VerificationResult) {
        let files = entry.meta?.files ?? []
        if files.isEmpty && entry.state != .incomplete {
            result.problems.append("the .meta lists no files")
        }
        for file in files {
            let path = entry.path + "/" + file.name
            do {
                let digest: String
                let size: UInt64
                if file.name.hasSuffix(".gz") {
                    let v = try GzipVerifier.verify(path: path)
                    (digest, size) = (v.sha256, v.compressedBytes)
                } else {
                    let d = try FileDigest.sha256(path: path)
                    (digest, size) = (d.sha256, d.sizeBytes)
                }
                if digest != file.sha256.lowercased() || size != file.sizeBytes {
                    result.problems.append("\(file.name): sha256/size differ from the .meta")
                } else {
                    result.checked.append("\(file.name) ok")
                }
            } catch {
                result.problems.append("\(file.name): \(error)")
            }
        }
        guard result.problems.isEmpty else { return }
        // pg_verifybackup (PostgreSQL 15) reads plain folders: extract, then check.
        let scratch = settings.stateDir + "/verify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do {
            try FileSystem.createDirectory(scratch + "/data", mode: 0o700)
            _ = try ChildProcess.output("tar", ["-xzf", entry.path + "/base.tar.gz", "-C", scratch + "/data"], scratchDirectory: settings.stateDir)
            if FileSystem.exists(entry.path + "/pg_wal.tar.gz") {
                try FileSystem.createDirectory(scratch + "/data/pg_wal", mode: 0o700)
                _ = try ChildProcess.output("tar", ["-xzf", entry.path + "/pg_wal.tar.gz", "-C", scratch + "/data/pg_wal"], scratchDirectory: settings.stateDir)
            }
            _ = try ChildProcess.output(settings.program("pg_verifybackup"),
                                        ["--manifest-path", entry.path + "/backup_manifest", scratch + "/data"],
                                        scratchDirectory: settings.stateDir)
            result.checked.append("pg_verifybackup ok")
        } catch {
            result.problems.append("pg_verifybackup: \(error)")
        }
    }
}
