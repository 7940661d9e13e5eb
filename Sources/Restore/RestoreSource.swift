#if canImport(Glibc)
import Glibc
#endif
import AgeEncryption
import BackstopCore
import BackupCatalog
import BackupPipeline

/// The checks every restore makes before it touches a server: the file exists, lies under
/// `BACKUP_DIR` (unless allowed outside), is the kind asked for, has a completed `.meta`, its
/// gzip stream inflates to the end and its SHA-256 equals the `.meta`'s. A file that fails any
/// check is refused with the reason; nothing has been changed at that point.
public enum RestoreSource {
    /// The result of the checks.
    public struct Checked: Sendable {
        public var entry: CatalogEntry
        public var verification: GzipVerification
        /// Said when the `.meta` has no checksum (a backup of the old scripts): only the gzip
        /// stream could be checked.
        public var warning: String?

        public init(entry: CatalogEntry, verification: GzipVerification, warning: String?) {
            self.entry = entry
            self.verification = verification
            self.warning = warning
        }
    }

    /// Resolves `path` (absolute or relative to the working directory) and runs every check.
    /// Blocking (reads the whole file).
    public static func check(path: String, backupDir: String, kind: BackupKind, allowOutside: Bool) throws -> Checked {
        guard FileSystem.exists(path) else {
            throw RestoreError("\(path): no such file; run the command without a file to list the backups", nothingChanged: true)
        }
        guard let real = realPath(path) else {
            throw RestoreError("\(path): cannot resolve the path", nothingChanged: true)
        }
        if !allowOutside {
            let root = realPath(backupDir) ?? backupDir
            guard real.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
                throw RestoreError("\(path) is not under BACKUP_DIR (\(root)); restoring from elsewhere needs --allow-outside", nothingChanged: true)
            }
        }
        let catalog = BackupCatalog(backupDir: backupDir)
        guard let entry = catalog.entry(at: real), entry.kind == kind else {
            throw RestoreError("\(path) is not a \(kind.rawValue) backup (expected \(kind == .redis ? "redis_YYYYMMDD_HHMMSS.rdb.gz" : kind == .postgresGlobals ? "globals_YYYYMMDD_HHMMSS.sql.gz" : "<db>_full_YYYYMMDD_HHMMSS.sql.gz"))", nothingChanged: true)
        }
        guard let meta = entry.meta, meta.isCompleted else {
            throw RestoreError("\(path): no completed .meta beside it (\(BackupMeta.path(for: real))): an interrupted or foreign file, not a backup to restore", nothingChanged: true)
        }
        let verification: GzipVerification
        do {
            if real.hasSuffix(".age") {
                // Every chunk authenticated and the gzip inside checked, before anything changes.
                let v = try EncryptedGzipVerifier.verify(path: real, identities: RestoreKeys.identities(for: path))
                verification = GzipVerification(path: real, compressedBytes: v.storedBytes, uncompressedBytes: v.uncompressedBytes,
                                                sha256: v.sha256, members: v.members)
            } else {
                verification = try GzipVerifier.verify(path: real)
            }
        } catch let error as RestoreError {
            throw error
        } catch let error as AgeError where error.kind == .noMatch {
            throw RestoreError("\(path) cannot be decrypted with BACKUP_ENCRYPTION_IDENTITY_FILE: \(error). Use the key `backstop list` names for it. Nothing was changed", nothingChanged: true)
        } catch let error as ConfigError {
            throw RestoreError("\(path) is age-encrypted and the key cannot be used: \(error). Nothing was changed", nothingChanged: true)
        } catch {
            throw RestoreError("\(path) is damaged, refusing to restore it: \(error). Nothing was changed; pick another backup (run without a file to list them)", nothingChanged: true)
        }
        var warning: String?
        if let expected = meta.sha256 {
            guard expected.lowercased() == verification.sha256 else {
                throw RestoreError("\(path) does not match its .meta: SHA-256 is \(verification.sha256), the .meta says \(expected). The file changed after the backup; refusing to restore it. Nothing was changed", nothingChanged: true)
            }
        } else {
            warning = "\(path): its .meta has no SHA-256 (a backup of the old scripts); only the gzip stream was checked"
        }
        return Checked(entry: entry, verification: verification, warning: warning)
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
