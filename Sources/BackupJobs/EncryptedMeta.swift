import BackupCatalog
import BackupPipeline

extension BackupMeta {
    /// Records how the stored file is encrypted: `"encryption": "age"` and the recipients'
    /// fingerprints, so `backstop list` can say which key a backup needs after a rotation.
    /// The `.meta`'s size and SHA-256 are already those of the file as stored.
    mutating func markEncryption(of written: WrittenFile) {
        guard written.isEncrypted else { return }
        encryption = "age"
        recipients = written.recipientFingerprints.joined(separator: ",")
    }
}
