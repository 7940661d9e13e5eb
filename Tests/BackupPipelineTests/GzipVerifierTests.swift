import BackstopTestSupport
import BackupPipeline
import Foundation
import Testing

@Suite struct GzipVerifierTests {
    private func makeGood(_ dir: String, name: String = "good.sql.gz") throws -> (WrittenFile, [UInt8]) {
        let input = TestData.sqlLike(bytes: 1_500_000)
        let writer = try BackupFileWriter(destination: dir + "/" + name, blockSize: 128 * 1024)
        try writer.write(input)
        return (try writer.finish(), input)
    }

    @Test func goodFileVerifies() throws {
        let dir = try TestEnvironment.makeTempDirectory("verify-good")
        let (written, input) = try makeGood(dir)
        let result = try GzipVerifier.verify(path: written.path)
        #expect(result.sha256 == written.sha256)
        #expect(result.uncompressedBytes == UInt64(input.count))
        #expect(result.compressedBytes == written.sizeBytes)
        #expect(result.members == 1)
    }

    @Test func gzipMadeFilesAndMultipleMembersVerify() throws {
        let dir = try TestEnvironment.makeTempDirectory("verify-multi")
        try "first part\n".write(toFile: dir + "/a", atomically: false, encoding: .utf8)
        try "second part\n".write(toFile: dir + "/b", atomically: false, encoding: .utf8)
        try TestProcesses.run("/bin/sh", ["-c", "cd '\(dir)' && gzip -c a > m.gz && gzip -9 -c b >> m.gz"])
        let result = try GzipVerifier.verify(path: dir + "/m.gz")
        #expect(result.members == 2)
        #expect(result.uncompressedBytes == 23)
        let sha = try TestProcesses.run("/usr/bin/sha256sum", [dir + "/m.gz"]).stdout.prefix(64)
        #expect(result.sha256 == String(sha))
    }

    @Test(arguments: [0.0, 0.3, 0.7, 0.999])
    func flippedByteIsCaught(position: Double) throws {
        let dir = try TestEnvironment.makeTempDirectory("verify-flip")
        let (written, _) = try makeGood(dir)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: written.path)))
        // Skip the 10-byte header's unchecked fields (mtime, XFL, OS) — flip in data or trailer.
        let index = max(10, min(bytes.count - 1, Int(Double(bytes.count) * position)))
        bytes[index] ^= 0x20
        try Data(bytes).write(to: URL(fileURLWithPath: written.path))
        let error = #expect(throws: GzipVerificationError.self) { try GzipVerifier.verify(path: written.path) }
        #expect(error?.path == written.path)
    }

    @Test(arguments: [1, 4, 8, 1000, 200_000])
    func truncationIsCaught(cut: Int) throws {
        let dir = try TestEnvironment.makeTempDirectory("verify-trunc")
        let (written, _) = try makeGood(dir)
        #expect(truncate(written.path, off_t(Int(written.sizeBytes) - cut)) == 0)
        #expect(throws: GzipVerificationError.self) { try GzipVerifier.verify(path: written.path) }
    }

    @Test func emptyFileAndGarbageAreCaught() throws {
        let dir = try TestEnvironment.makeTempDirectory("verify-bad")
        _ = FileManager.default.createFile(atPath: dir + "/empty.gz", contents: Data())
        #expect(throws: GzipVerificationError.self) { try GzipVerifier.verify(path: dir + "/empty.gz") }
        _ = FileManager.default.createFile(atPath: dir + "/plain.gz", contents: Data("CREATE TABLE t();\n".utf8))
        #expect(throws: GzipVerificationError.self) { try GzipVerifier.verify(path: dir + "/plain.gz") }
        let (written, _) = try makeGood(dir)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: written.path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("junk".utf8))
        try handle.close()
        #expect(throws: GzipVerificationError.self) { try GzipVerifier.verify(path: written.path) }
    }
}
