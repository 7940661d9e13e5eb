import BackstopCore
import BackupCatalog
import Foundation
import Testing

/// `BackupMeta.decode` (with its fast path) agrees with Foundation's JSONDecoder on the
/// `.meta` files Backstop writes, the old scripts' ones, and odd or broken ones.
@Suite struct MetaDecodingTests {
    static func reference(_ bytes: [UInt8]) -> BackupMeta? { try? JSONDecoder().decode(BackupMeta.self, from: Data(bytes)) }

    @Test func agreesWithJSONDecoder() throws {
        var written = BackupMeta(kind: .postgresBase, target: "cluster", file: "/backups/postgres/wal_20260101_000000", startedAt: 1_767_225_600,
                                 finishedAt: 1_767_225_700.25, sizeBytes: 123_456, sha256: nil, compression: "gzip:6", serverVersion: "15.4")
        written.files = [.init(name: "base.tar.gz", sizeBytes: 100, sha256: String(repeating: "c", count: 64))]
        written.startLSN = "0/2000028"
        written.timeline = 1
        let samples: [String] = [
            String(decoding: try written.encoded(), as: UTF8.self),
            #"{"timestamp": "20240101_020000", "type": "full", "database": "psscript", "size": "150M", "file": "/backups/postgres/psscript_full_20240101_020000.sql.gz", "status": "completed"}"#,
            #"{"timestamp":"x","type":"redis","status":"success","size_bytes":12,"duration_seconds":1.5,"target":"a\"b\\c\/d\n"}"#,
            #"{"timestamp":"x","type":"redis","target":"caf\u00e9"}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":"12"}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":-1}"#,
            #"{"timestamp":"x","type":"redis","kind":"nope"}"#,
            #"{"timestamp":"x","type":"redis","extra":{"nested":true}}"#,
            #"{"timestamp":"x","type":"redis","files":[{"name":"a","size_bytes":1}]}"#,
            #"{"type":"redis"}"#,
            #"{"timestamp":"x","type":"redis""#,
            #"{"timestamp":"x","type":"redis"} trailing"#,
            "",
        ]
        for text in samples {
            let bytes = Array(text.utf8)
            let expected = Self.reference(bytes)
            let actual = try? BackupMeta.decode(bytes)
            #expect(actual == expected, "\(text)")
        }
        #expect(try BackupMeta.decode(try written.encoded()) == written)
    }
}
