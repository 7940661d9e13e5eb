import BackstopCore
import BackstopMetrics
import Foundation
@testable import S3
import Testing

/// The uploader's pure parts: which files of a base-backup folder go, redaction, the gauges.
@Suite struct S3UploaderUnitTests {
    static let env = ["BACKUP_S3_BUCKET": "bk", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                      "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "AWS_SESSION_TOKEN": "FQoGZXIvYXdzEXAMPLETOKEN"]

    @Test func baseBackupFolderFilesRecursiveRegularOnly() throws {
        let dir = try TestDirectory.make()
        let folder = dir + "/wal_20260101_000000"
        try FileManager.default.createDirectory(atPath: folder + "/tablespaces", withIntermediateDirectories: true)
        for name in ["base.tar.gz", "pg_wal.tar.gz", "backup_manifest", ".partial-leftover", "tablespaces/16384.tar.gz"] {
            try Data("x".utf8).write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        try FileManager.default.createSymbolicLink(atPath: folder + "/link", withDestinationPath: "/etc/passwd")
        #expect(try S3Uploader.regularFiles(in: folder) == ["backup_manifest", "base.tar.gz", "pg_wal.tar.gz", "tablespaces/16384.tar.gz"])
    }

    @Test func errorsAreRedacted() throws {
        let settings = try #require(try S3Settings(environment: Self.env))
        let uploader = S3Uploader(settings: settings, backupDir: "/nonexistent")
        let text = uploader.redacted("failed with wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY and FQoGZXIvYXdzEXAMPLETOKEN in it")
        #expect(text == "failed with <redacted> and <redacted> in it")
    }

    @Test func gaugesFollowTheState() {
        let registry = MetricsRegistry()
        S3Uploader.declareMetrics(in: registry)
        #expect(registry.value(Family.s3Uploads, ["result": "success"]) == 0)
        #expect(registry.value(Family.s3Uploads, ["result": "failure"]) == 0)
        #expect(registry.value(Family.s3UploadConsecutiveFailures) == 0)
        #expect(registry.value(Family.s3UploadLastSuccess) == 0)
        var state = S3UploadState()
        state.consecutiveFailures = 3
        state.lastSuccess = 1_700_000_000
        S3Uploader.publish(state, in: registry)
        #expect(registry.value(Family.s3UploadConsecutiveFailures) == 3)
        #expect(registry.value(Family.s3UploadLastSuccess) == 1_700_000_000)
    }

    @Test func stateRoundTripsThroughTheFile() throws {
        let dir = try TestDirectory.make()
        #expect(S3UploadState.load(backupDir: dir) == S3UploadState())
        var state = S3UploadState()
        state.uploaded["redis/redis_20260101_000000.rdb.gz"] = 1_700_000_000
        state.consecutiveFailures = 2
        state.lastError = "S3 PUT s3://bk/x failed: HTTP 503 SlowDown"
        try FileManager.default.createDirectory(atPath: dir + "/.state", withIntermediateDirectories: true)
        try state.save(backupDir: dir)
        #expect(S3UploadState.load(backupDir: dir) == state)
        let text = try String(contentsOfFile: dir + "/.state/s3_uploads.json", encoding: .utf8)
        #expect(text.contains("\"consecutive_failures\" : 2"))
    }
}

enum TestDirectory {
    static func make() throws -> String {
        let path = NSTemporaryDirectory() + "s3unit-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
