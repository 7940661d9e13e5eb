import AgeEncryption
import BackupCatalog
import BackupPipeline

extension BackupVerification {
    /// An age-encrypted backup: with `BACKUP_ENCRYPTION_IDENTITY_FILE`, every chunk's tag, the
    /// gzip stream and the SHA-256; without it, the SHA-256 and the age header only, and the
    /// report says the content check needs the key.
    func verifyEncrypted(_ entry: CatalogEntry, _ result: inout VerificationResult) {
        do {
            let identities = try settings.encryption.loadIdentities()
            let v = try EncryptedGzipVerifier.verify(path: entry.path, identities: identities)
            result.checked.append("age header ok (\(v.recipients) recipient\(v.recipients == 1 ? "" : "s"))")
            if v.contentChecked {
                result.checked.append("every age chunk authenticated, gzip ok (\(HumanBytes.format(v.uncompressedBytes)) uncompressed)")
            } else {
                result.checked.append("content NOT checked: decrypting needs the key (set BACKUP_ENCRYPTION_IDENTITY_FILE)")
            }
            if let expected = entry.meta?.sha256 {
                if expected.lowercased() == v.sha256 {
                    result.checked.append("sha256 matches .meta")
                } else {
                    result.problems.append("sha256 \(v.sha256) differs from the .meta's \(expected)")
                }
            }
            if let size = entry.meta?.sizeBytes, size != v.storedBytes {
                result.problems.append("size \(v.storedBytes) bytes differs from the .meta's \(size)")
            }
        } catch {
            result.problems.append("\(error)")
        }
    }
}
