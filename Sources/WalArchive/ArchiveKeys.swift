import AgeEncryption
import BackupJobs

/// The identities a restore needs for encrypted files (an encrypted base backup, `.gz.age`
/// segments): `BACKUP_ENCRYPTION_IDENTITY_FILE` of the job settings, read only when such a
/// file is met, so plain restores never need a key. Without one, the error names the variable.
enum ArchiveKeys {
    static func identities(_ settings: PostgresJobSettings, for path: String) throws -> [AgeIdentity] {
        guard let identities = try settings.encryption.loadIdentities() else {
            throw WalArchiveError("\(path) is age-encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE to the file holding its AGE-SECRET-KEY-1 key (mode 0600). Nothing was changed.")
        }
        return identities
    }

    /// Proves the identities open `path`; a wrong key is refused before anything is written.
    static func check(_ identities: [AgeIdentity], open path: String) throws {
        do {
            try AgeFile.checkKey(path: path, identities: identities)
        } catch let error as AgeError where error.kind == .noMatch {
            throw WalArchiveError("\(path) cannot be decrypted with BACKUP_ENCRYPTION_IDENTITY_FILE: \(error). Use the key `backstop list` names for it. Nothing was changed.")
        } catch {
            throw WalArchiveError("\(path) is damaged: \(error). Nothing was changed.")
        }
    }
}
