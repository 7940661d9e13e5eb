import BackstopCore
import Foundation
import S3
import Testing

/// The pure parts: settings, addressing, response classification, backoff.
@Suite struct S3UnitTests {
    static let base = ["BACKUP_S3_BUCKET": "bk", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"]

    @Test func offWithoutBucket() throws {
        #expect(try S3Settings(environment: [:]) == nil)
        #expect(try S3Settings(environment: ["BACKUP_S3_BUCKET": ""]) == nil)
    }

    @Test func defaultsAndAddressing() throws {
        let s = try #require(try S3Settings(environment: Self.base))
        #expect(s.storageClass == "STANDARD_IA" && s.region == "us-east-1" && !s.pathStyle && s.encryption == .none)
        #expect(s.url(key: "postgres/a b.sql.gz") == "https://bk.s3.us-east-1.amazonaws.com/postgres/a%20b.sql.gz")
        var env = Self.base
        env["BACKUP_S3_ENDPOINT"] = "http://127.0.0.1:9000/"
        env["BACKUP_S3_PREFIX"] = "/prod/db/"
        env["BACKUP_S3_SSE"] = "aws:kms"
        env["BACKUP_S3_SSE_KMS_KEY_ID"] = "alias/backups"
        let c = try #require(try S3Settings(environment: env))
        #expect(c.pathStyle && c.key(for: "redis/r.rdb.gz") == "prod/db/redis/r.rdb.gz")
        #expect(c.url(key: c.key(for: "redis/r.rdb.gz")) == "http://127.0.0.1:9000/bk/prod/db/redis/r.rdb.gz")
        #expect(c.url(key: nil, query: "list-type=2") == "http://127.0.0.1:9000/bk?list-type=2")
        #expect(c.encryption == .kms(keyID: "alias/backups"))
        #expect(c.destination == "s3://bk/prod/db")
    }

    @Test func badValuesNameTheVariableAndNeverTheSecret() {
        for (name, value) in [("BACKUP_S3_SSE", "rot13"), ("BACKUP_S3_STORAGE_CLASS", "CHEAP"), ("BACKUP_S3_PART_SIZE", "1MiB"),
                              ("BACKUP_S3_ENDPOINT", "minio:9000"), ("BACKUP_S3_CONCURRENCY", "0")] {
            var env = Self.base
            env[name] = value
            do {
                _ = try S3Settings(environment: env)
                Issue.record("\(name)=\(value) accepted")
            } catch {
                #expect("\(error)".contains(name))
                #expect(!"\(error)".contains("wJalrXUtnFEMI"))
            }
        }
        var missing = Self.base
        missing["AWS_SECRET_ACCESS_KEY"] = nil
        #expect(throws: (any Error).self) { try S3Settings(environment: missing) }
    }

    @Test func classification() {
        #expect(S3Client.classify(status: 200, body: "") == .success)
        #expect(S3Client.classify(status: 503, body: "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>")
            == .retry("HTTP 503 SlowDown: Reduce your request rate."))
        #expect(S3Client.classify(status: 400, body: "<Error><Code>RequestTimeout</Code></Error>") == .retry("HTTP 400 RequestTimeout"))
        #expect(S3Client.classify(status: 500, body: "") == .retry("HTTP 500"))
        #expect(S3Client.classify(status: 403, body: "<Error><Code>AccessDenied</Code></Error>") == .fail("HTTP 403 AccessDenied"))
        #expect(S3Client.classify(status: 200, body: "<Error><Code>InternalError</Code></Error>") == .retry("HTTP 200 InternalError"))
        #expect(S3Client.classify(status: 200, body: "<Error><Code>InvalidPart</Code></Error>") == .fail("HTTP 200 InvalidPart"))
    }

    @Test func backoffGrowsWithJitterAndCap() {
        let base = Duration.milliseconds(500)
        #expect(S3Client.backoff(attempt: 1, base: base, random: 1) == .milliseconds(500))
        #expect(S3Client.backoff(attempt: 3, base: base, random: 1) == .milliseconds(2000))
        #expect(S3Client.backoff(attempt: 20, base: base, random: 1) == .seconds(30))
        #expect(S3Client.backoff(attempt: 3, base: base, random: 0.5) == .milliseconds(1000))
        #expect(S3Client.backoff(attempt: 3, base: base, random: 0) == .milliseconds(10))
    }

    @Test func sizes() {
        #expect(S3Settings.parseBytes("8388608") == 8_388_608)
        #expect(S3Settings.parseBytes("64MiB") == 64 << 20)
        #expect(S3Settings.parseBytes("1G") == 1 << 30)
        #expect(S3Settings.parseBytes("lots") == nil)
    }
}
