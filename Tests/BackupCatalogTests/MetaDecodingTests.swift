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

    /// The fast path fills every field straight from the JSON: a Redis `.meta` (with its
    /// `keys`/`expires` objects), the bench's `.meta`, repeated keys, numbers in odd forms,
    /// escaped and unknown keys, and every field set to null.
    @Test func everyFieldAgreesWithJSONDecoder() throws {
        var redis = BackupMeta(kind: .redis, target: "mymaster", file: "/backups/redis/redis_20260101_000000.rdb.gz", startedAt: 1_767_225_600,
                               finishedAt: 1_767_225_612.5, sizeBytes: 4096, sha256: String(repeating: "a", count: 64),
                               compression: "gzip-6", serverVersion: "7.2.4")
        redis.uncompressedBytes = 10_000
        redis.redisVersion = "7.2.4"
        redis.rdbVersion = 11
        redis.master = "10.0.0.1:6379"
        redis.source = "10.0.0.2:6379"
        redis.sourceRole = "replica"
        redis.keys = ["db0": 12, "db3": 0]
        redis.expires = ["db0": 2, "db3": 0]
        redis.method = "replication"
        redis.rdbChecksum = "verified"
        var empty = redis
        empty.keys = [:]
        empty.expires = [:]
        var base = BackupMeta(kind: .postgresBase, target: "cluster", file: "/b/postgres/wal_20260101_000000", startedAt: 1_767_225_600,
                              finishedAt: 1_767_225_700, sizeBytes: 1, sha256: nil, compression: nil, serverVersion: nil)
        base.endLSN = "0/3000000"
        base.timeline = 2
        base.files = [.init(name: "base.tar.gz", sizeBytes: 10, sha256: "c"), .init(name: "backup_manifest", sizeBytes: 0, sha256: "d")]
        let allFields = ["timestamp", "type", "database", "size", "file", "status", "kind", "target", "size_bytes", "uncompressed_bytes",
                         "sha256", "duration_seconds", "started_at", "finished_at", "compression", "server_version", "tool_version",
                         "start_lsn", "end_lsn", "timeline", "files", "redis_version", "rdb_version", "master", "source",
                         "source_role", "keys", "expires", "method", "rdb_checksum"]
        let nulls = "{" + allFields.map { #""\#($0)":null"# }.joined(separator: ",") + "}"
        let withRequired = #"{"timestamp":"t","type":"full","# + allFields.dropFirst(2).map { #""\#($0)":null"# }.joined(separator: ",") + "}"
        let samples: [String] = [
            String(decoding: try redis.encoded(), as: UTF8.self),
            String(decoding: try empty.encoded(), as: UTF8.self),
            String(decoding: try base.encoded(), as: UTF8.self),
            """
            {
              "compression" : "gzip:6",
              "database" : "app",
              "duration_seconds" : 30,
              "file" : "/tmp/b/postgres/app_full_20260101_000000.sql.gz",
              "finished_at" : "2026-01-01T00:00:30Z",
              "kind" : "postgres_full",
              "sha256" : "abab",
              "size" : "32",
              "size_bytes" : 32,
              "started_at" : "2026-01-01T00:00:00Z",
              "status" : "completed",
              "target" : "app",
              "timestamp" : "20260101_000000",
              "tool_version" : "backstop bench",
              "type" : "full"
            }
            """,
            nulls, withRequired,
            #"{"timestamp":"x","type":"redis","size_bytes":"12","size_bytes":12}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":12,"size_bytes":"12"}"#,
            #"{"timestamp":null,"type":"redis","timestamp":"y"}"#,
            #"{"timestamp":"x","type":"redis","kind":"nope","kind":"redis"}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":0,"timeline":-7,"rdb_version":7,"duration_seconds":-1.5e1}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":-0}"#,
            #"{"timestamp":"x","type":"redis","timeline":-0}"#,
            #"{"timestamp":"x","type":"redis","rdb_version":007}"#,
            #"{"timestamp":"x","type":"redis","duration_seconds":00.5}"#,
            #"{"timestamp":"x","type":"redis","duration_seconds":0.5}"#,
            #"{"timestamp":"x","type":"redis","u":1,"u":2}"#,
            #"{"timestamp":"x","type":"redis","u":1,"v":2}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":999999999999999}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":18446744073709551615}"#,
            #"{"timestamp":"x","type":"redis","files":[{"name":"a","name":"b","size_bytes":1,"sha256":"b"}]}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":1.0}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":123456789012345678}"#,
            #"{"timestamp":"x","type":"redis","size_bytes":1-2}"#,
            #"{"timestamp":"x","type":"redis","duration_seconds":-}"#,
            #"{"timestamp":"x","type":"redis","timeline":true}"#,
            #"{"timestamp":"x","type":"redis","tim\u0065line":1}"#,
            #"{"timestamp":"x","type":"redis","t\/arget":"a","unknown":"\n","other":[1]}"#,
            #"{"timestamp":"x","type":"redis","unknown":1.5,"more":false,"x":null}"#,
            #"{"timestamp":"x","type":"redis","keys":{"db0":1,"db0":2}}"#,
            #"{"timestamp":"x","type":"redis","keys":{"db0":1.5}}"#,
            #"{"timestamp":"x","type":"redis","keys":{"db0":"1"}}"#,
            #"{"timestamp":"x","type":"redis","keys":5}"#,
            #"{"timestamp":"x","type":"redis","expires":{}}"#,
            #"{"timestamp":"x","type":"redis","files":5}"#,
            #"{"timestamp":"x","type":"redis","files":[]}"#,
            #"{"timestamp":"x","type":"redis","files":[{"name":"a","size_bytes":1,"sha256":"b","extra":[1]}]}"#,
            #"{"timestamp":"x","type":"redis","master":{"a":1}}"#,
            #"{}"#, "[]", "null", #"{"timestamp":"x","type":"redis",}"#,
        ]
        for text in samples {
            let bytes = Array(text.utf8)
            let expected = Self.reference(bytes)
            let actual = try? BackupMeta.decode(bytes)
            #expect(actual == expected, "\(text)")
        }
        #expect(try BackupMeta.decode(try redis.encoded()) == redis)
        #expect(try BackupMeta.decode(try base.encoded()) == base)
        // Invalid UTF-8 in a key or value is rejected by both.
        for bytes: [UInt8] in [Array(#"{"timestamp":"x","type":"redis","\#u{FF}":1}"#.utf8).map { $0 == 0xC3 ? 0xFF : $0 },
                               Array(#"{"timestamp":"x","type":"redis","target":""#.utf8) + [0xFF, 0x22, 0x7D]] {
            #expect((try? BackupMeta.decode(bytes)) == Self.reference(bytes))
        }
    }
}
