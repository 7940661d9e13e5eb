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

    /// An encrypted base backup: its `base.tar.gz.age` against the `.meta` (SHA-256, size) and
    /// the age header; with the key, the in-memory manifest check of `EncryptedBaseCheck`
    /// (no plaintext is extracted anywhere: pg_verifybackup runs on a restore's target).
    func verifyEncryptedBase(_ entry: CatalogEntry, _ result: inout VerificationResult) {
        let name = PostgresBaseBackup.encryptedTarName
        guard let file = entry.meta?.files?.first(where: { $0.name == name }) else {
            result.problems.append("the .meta does not list \(name)")
            return
        }
        do {
            let identities = try settings.encryption.loadIdentities()
            let check = try EncryptedBaseCheck.run(path: entry.path + "/" + name, identities: identities)
            result.checked.append("age header ok (\(check.recipients) recipient\(check.recipients == 1 ? "" : "s"))")
            if check.sha256 == file.sha256.lowercased() && check.storedBytes == file.sizeBytes {
                result.checked.append("\(name) ok (sha256 and size match .meta)")
            } else {
                result.problems.append("\(name): sha256/size differ from the .meta")
            }
            if check.contentChecked {
                result.problems += check.problems.map { "\(name): \($0)" }
                if check.problems.isEmpty {
                    result.checked.append("every age chunk authenticated, gzip ok, \(check.filesChecked) files match backup_manifest, \(check.walSegments) WAL segments (checked in memory; pg_verifybackup runs on restore)")
                }
            } else {
                result.checked.append("content NOT checked: decrypting needs the key (set BACKUP_ENCRYPTION_IDENTITY_FILE)")
            }
        } catch {
            result.problems.append("\(name): \(error)")
        }
    }
}
