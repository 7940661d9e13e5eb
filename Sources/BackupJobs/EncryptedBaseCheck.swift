import AgeEncryption
import BackupPipeline
import Crypto

/// The check of an encrypted base backup (`base.tar.gz.age`) that needs no plaintext on disk.
/// Without the key: the stored SHA-256 and the age header. With it, in one pass and in memory:
/// every age chunk authenticated, the gzip inflated to its end, the tar walked member by
/// member, and every file compared with the `backup_manifest` inside the tar — size and
/// SHA-256 of each listed file, nothing listed missing, nothing unlisted outside `pg_wal/`,
/// the manifest's own checksum, and the WAL segments of its range present in `pg_wal/`.
/// (pg_verifybackup reads a directory; it runs when a restore has decrypted into its target.)
///
/// Blocking: call from a thread that may block.
public enum EncryptedBaseCheck {
    public struct Result: Sendable {
        public var sha256: String
        public var storedBytes: UInt64
        public var recipients: Int
        /// False without an identity: only the stored checksum and the header were checked.
        public var contentChecked: Bool
        public var filesChecked = 0
        public var walSegments = 0
        public var uncompressedBytes: UInt64 = 0
        /// Empty when the content (when checked) matches its manifest.
        public var problems: [String] = []
    }

    public static func run(path: String, identities: [AgeIdentity]?) throws -> Result {
        var seen: [String: (size: UInt64, sha256: String)] = [:]
        var manifest: [UInt8] = []
        var current: TarMember?
        var hasher = SHA256()
        let tar = TarStreamReader(begin: { member in
            current = member.isRegularFile ? member : nil
            hasher = SHA256()
            if member.name == "backup_manifest" { manifest.removeAll() }
        }, data: { bytes in
            hasher.update(bufferPointer: bytes)
            if current?.name == "backup_manifest" { manifest.append(contentsOf: bytes) }
        }, end: {
            if let member = current {
                seen[member.name] = (member.size, hasher.finalize().map { String(format: "%02x", $0) }.joined())
            }
            current = nil
        })
        let verified = try EncryptedGzipVerifier.verify(path: path, identities: identities, inflated: identities == nil ? nil : { try tar.feed($0) })
        var result = Result(sha256: verified.sha256, storedBytes: verified.storedBytes, recipients: verified.recipients,
                            contentChecked: verified.contentChecked, uncompressedBytes: verified.uncompressedBytes)
        guard verified.contentChecked else { return result }
        try tar.finish()
        guard !manifest.isEmpty else {
            result.problems.append("the tar holds no backup_manifest")
            return result
        }
        if !ManifestFacts.checksumMatches(manifest) { result.problems.append("backup_manifest fails its own Manifest-Checksum") }
        let listed = try ManifestFacts.files(of: manifest, name: "backup_manifest")
        var listedPaths = Set<String>()
        for file in listed {
            listedPaths.insert(file.path)
            guard let found = seen[file.path] else {
                result.problems.append("\(file.path) is in the manifest but not in the tar")
                continue
            }
            if found.size != file.size {
                result.problems.append("\(file.path): \(found.size) bytes in the tar, \(file.size) in the manifest")
            } else if file.algorithm == "SHA256", found.sha256 != file.checksum {
                result.problems.append("\(file.path): SHA-256 differs from the manifest")
            } else {
                result.filesChecked += 1
            }
        }
        for name in seen.keys where !listedPaths.contains(name) && name != "backup_manifest" && !name.hasPrefix("pg_wal/") {
            result.problems.append("\(name) is in the tar but not in the manifest")
        }
        let range = try ManifestFacts.range(of: manifest, name: "backup_manifest")
        let segments = seen.filter { $0.key.hasPrefix("pg_wal/") && $0.key.count == 31 }
        result.walSegments = segments.count
        let needed = walSegmentNames(range, segmentSize: segments.first?.value.size ?? 16 << 20)
        for name in needed where segments["pg_wal/" + name] == nil {
            result.problems.append("WAL segment \(name) of the backup's range \(range.startLSN)–\(range.endLSN) is not in pg_wal/")
        }
        return result
    }

    /// The segment file names a WAL range spans (the end LSN's own segment included).
    static func walSegmentNames(_ range: ManifestFacts.Range, segmentSize: UInt64) -> [String] {
        func lsn(_ text: String) -> UInt64? {
            let parts = text.split(separator: "/")
            guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16) else { return nil }
            return high << 32 | low
        }
        guard segmentSize > 0, let start = lsn(range.startLSN), let end = lsn(range.endLSN), end >= start else { return [] }
        let perLog = 0x1_0000_0000 / segmentSize
        func hex8(_ v: UInt64) -> String {
            let digits = String(v, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
        }
        let last = (end > start ? end - 1 : end) / segmentSize
        return (start / segmentSize...last).map { hex8(UInt64(range.timeline)) + hex8($0 / perLog) + hex8($0 % perLog) }
    }
}
