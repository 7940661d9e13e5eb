import BackstopCore
import Crypto
import Foundation

/// A PostgreSQL `backup_manifest` (JSON): the WAL range a base backup needs ("WAL-Ranges")
/// and, for the in-memory check of an encrypted base backup, every file's size and SHA-256
/// and the manifest's own checksum.
public enum ManifestFacts {
    public struct Range: Sendable, Equatable {
        public var timeline: Int
        public var startLSN: String
        public var endLSN: String
    }

    /// One file the manifest lists.
    public struct File: Sendable, Equatable {
        public var path: String
        public var size: UInt64
        /// `SHA256` when the backup was taken with `--manifest-checksums=SHA256` (Backstop's).
        public var algorithm: String
        public var checksum: String
    }

    public static func read(path: String) throws -> Range {
        try range(of: try FileSystem.read(path), name: path)
    }

    /// The WAL range of a manifest held in memory (`name` is what an error calls it).
    public static func range(of bytes: [UInt8], name: String) throws -> Range {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let ranges = object["WAL-Ranges"] as? [[String: Any]], let first = ranges.first, let last = ranges.last,
              let start = first["Start-LSN"] as? String, let end = last["End-LSN"] as? String else {
            throw BackupJobError("\(name) has no WAL-Ranges (not a PostgreSQL 13+ backup manifest?)")
        }
        let timeline = (last["Timeline"] as? Int) ?? Int("\(last["Timeline"] ?? "0")") ?? 0
        return Range(timeline: timeline, startLSN: start, endLSN: end)
    }

    /// Every file the manifest lists ("Encoded-Path", hex, for names that are not UTF-8).
    public static func files(of bytes: [UInt8], name: String) throws -> [File] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let files = object["Files"] as? [[String: Any]] else {
            throw BackupJobError("\(name) is not a backup manifest (no Files list)")
        }
        return try files.map { entry in
            var path = entry["Path"] as? String
            if path == nil, let encoded = entry["Encoded-Path"] as? String {
                path = String(decoding: hexBytes(encoded), as: UTF8.self)
            }
            guard let path, let size = (entry["Size"] as? NSNumber)?.uint64Value else {
                throw BackupJobError("\(name) has a file entry without Path or Size")
            }
            return File(path: path, size: size, algorithm: entry["Checksum-Algorithm"] as? String ?? "NONE",
                        checksum: (entry["Checksum"] as? String ?? "").lowercased())
        }
    }

    /// Whether the manifest's "Manifest-Checksum" (SHA-256 of every byte up to and including
    /// the newline before its own line, as pg_verifybackup computes it) matches.
    public static func checksumMatches(_ bytes: [UInt8]) -> Bool {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let recorded = object["Manifest-Checksum"] as? String else { return false }
        var end = bytes.count
        while end > 0 && bytes[end - 1] == 10 { end -= 1 }
        guard let lastNewline = bytes[..<end].lastIndex(of: 10) else { return false }
        let digest = SHA256.hash(data: bytes[...lastNewline])
        return digest.map { String(format: "%02x", $0) }.joined() == recorded.lowercased()
    }

    private static func hexBytes(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(decoding: digits[$0...($0 + 1)], as: UTF8.self), radix: 16) }
    }
}
