import BackstopCore
import BackstopTestSupport
import Foundation
import S3
import Testing

/// The S3 client against a real S3-compatible server (moto_server), checked with the AWS CLI.
@Suite(.serialized) struct S3MotoSmokeTests {
    @Test func singlePutArrivesWithStorageClassAndEncryption() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("smoke")
        var env = moto.backstopEnvironment(bucket: "smoke", prefix: "prod")
        env["BACKUP_S3_STORAGE_CLASS"] = "STANDARD_IA"
        env["BACKUP_S3_SSE"] = "AES256"
        let settings = try #require(try S3Settings(environment: env))
        let dir = try TestEnvironment.makeTempDirectory("s3smoke")
        let file = dir + "/a.sql.gz"
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        try await S3Client(settings: settings).upload(file: file, key: settings.key(for: "postgres/a.sql.gz"))
        #expect(try moto.keys(bucket: "smoke") == ["prod/postgres/a.sql.gz"])
        let head = try moto.headObject(bucket: "smoke", key: "prod/postgres/a.sql.gz")
        #expect(head["StorageClass"] as? String == "STANDARD_IA")
        #expect(head["ServerSideEncryption"] as? String == "AES256")
        try moto.download(bucket: "smoke", key: "prod/postgres/a.sql.gz", to: dir + "/back")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/back")) == Data(bytes))
    }
}
