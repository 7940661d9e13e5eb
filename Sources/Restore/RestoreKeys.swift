import AgeEncryption
import BackstopCore

/// The identities that decrypt `.age` backups for restore and drill: the
/// `BACKUP_ENCRYPTION_IDENTITY_FILE` of the process environment (mode 0600), read when an
/// encrypted file is met, so unencrypted restores never need it.
enum RestoreKeys {
    static func identities(for path: String) throws -> [AgeIdentity] {
        let settings = try EncryptionSettings(environment: ProcessEnvironment.current())
        guard let identities = try settings.loadIdentities() else {
            throw RestoreError("\(path) is age-encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE to the file holding its AGE-SECRET-KEY-1 key (mode 0600). Nothing was changed", nothingChanged: true)
        }
        return identities
    }
}
