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
        guard let manifest = try? JSONCoding.decode(Manifest.self, from: bytes),
              let first = manifest.ranges?.first, let last = manifest.ranges?.last else {
            throw BackupJobError("\(name) has no WAL-Ranges (not a PostgreSQL 13+ backup manifest?)")
        }
        return Range(timeline: last.timeline, startLSN: first.start, endLSN: last.end)
    }

    /// Every file the manifest lists ("Encoded-Path", hex, for names that are not UTF-8).
    public static func files(of bytes: [UInt8], name: String) throws -> [File] {
        guard let manifest = try? JSONCoding.decode(Manifest.self, from: bytes), let files = manifest.files else {
            throw BackupJobError("\(name) is not a backup manifest (no Files list)")
        }
        return try files.map { entry in
            guard let path = entry.path ?? entry.encodedPath.map({ String(decoding: hexBytes($0), as: UTF8.self) }), let size = entry.size else {
                throw BackupJobError("\(name) has a file entry without Path or Size")
            }
            return File(path: path, size: size, algorithm: entry.algorithm ?? "NONE", checksum: (entry.checksum ?? "").lowercased())
        }
    }

    /// Whether the manifest's "Manifest-Checksum" (SHA-256 of every byte up to and including
    /// the newline before its own line, as pg_verifybackup computes it) matches.
    public static func checksumMatches(_ bytes: [UInt8]) -> Bool {
        guard let recorded = (try? JSONCoding.decode(Manifest.self, from: bytes))?.checksum else { return false }
        var end = bytes.count
        while end > 0 && bytes[end - 1] == 10 { end -= 1 }
        guard let lastNewline = bytes[..<end].lastIndex(of: 10) else { return false }
        let digest = SHA256.hash(data: bytes[...lastNewline])
        return digest.map { String(format: "%02x", $0) }.joined() == recorded.lowercased()
    }

    /// The parts of `backup_manifest` read here, through the project's one JSON decoder.
    private struct Manifest: Decodable {
        struct WALRange: Decodable {
            enum CodingKeys: String, CodingKey { case timeline = "Timeline", start = "Start-LSN", end = "End-LSN" }
            var timeline: Int, start: String, end: String

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                start = try c.decode(String.self, forKey: .start)
                end = try c.decode(String.self, forKey: .end)
                // A number in PostgreSQL's manifests; a string of digits is taken too.
                timeline = (try? c.decode(Int.self, forKey: .timeline)) ?? (try? c.decode(String.self, forKey: .timeline)).flatMap { Int($0) } ?? 0
            }
        }
        struct Entry: Decodable {
            enum CodingKeys: String, CodingKey {
                case path = "Path", encodedPath = "Encoded-Path", size = "Size", algorithm = "Checksum-Algorithm", checksum = "Checksum"
            }
            var path: String?, encodedPath: String?, size: UInt64?, algorithm: String?, checksum: String?
        }
        enum CodingKeys: String, CodingKey { case ranges = "WAL-Ranges", files = "Files", checksum = "Manifest-Checksum" }
        var ranges: [WALRange]?
        var files: [Entry]?
        var checksum: String?
    }

    private static func hexBytes(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(decoding: digits[$0...($0 + 1)], as: UTF8.self), radix: 16) }
    }
}
