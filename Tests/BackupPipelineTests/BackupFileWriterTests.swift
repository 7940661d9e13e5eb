import BackstopCore
import BackstopTestSupport
import BackupPipeline
import Foundation
import Testing

@Suite struct BackupFileWriterTests {
    private func gzipBinary() throws -> String { try TestEnvironment.binary("gzip", package: "gzip") }

    private func writeFile(_ input: [UInt8], level: Int32 = 6, blockSize: Int = 256 * 1024, workers: Int? = nil,
                           in dir: String, name: String = "out.sql.gz") throws -> WrittenFile {
        let writer = try BackupFileWriter(destination: dir + "/" + name, compressionLevel: level, blockSize: blockSize, workers: workers)
        // Feed in uneven pieces so block boundaries fall anywhere.
        var offset = 0, step = 1
        while offset < input.count {
            let n = min(step, input.count - offset)
            try input.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
            offset += n
            step = step * 3 % 200_003 + 1
        }
        return try writer.finish()
    }

    @Test(arguments: [(64 * 1024, 1), (256 * 1024, 2), (1 << 20, 4)])
    func gunzipGivesBackTheInput(blockSize: Int, workers: Int) throws {
        let dir = try TestEnvironment.makeTempDirectory("pipe")
        let input = TestData.sqlLike(bytes: 3_000_000) + TestData.random(bytes: 300_000) + TestData.sqlLike(bytes: 500_000, seed: 9)
        let written = try writeFile(input, blockSize: blockSize, workers: workers, in: dir)
        #expect(written.uncompressedBytes == UInt64(input.count))
        #expect(written.path == dir + "/out.sql.gz")
        try TestProcesses.run(try gzipBinary(), ["-t", written.path])
        _ = FileManager.default.createFile(atPath: dir + "/in", contents: Data(input))
        let cmp = try TestProcesses.run("/bin/sh", ["-c", "gzip -dc '\(written.path)' | cmp - '\(dir)/in' && echo same"])
        #expect(cmp.stdout == "same\n")
        let size = try FileManager.default.attributesOfItem(atPath: written.path)[.size] as? Int
        #expect(size.map(UInt64.init) == written.sizeBytes)
        let sha = try TestProcesses.run("/usr/bin/sha256sum", [written.path]).stdout.split(separator: " ").first.map(String.init)
        #expect(sha == written.sha256)
        // Nothing else is left in the folder (no temporary file).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["in", "out.sql.gz"])
    }

    @Test func sizeIsWithinFivePercentOfGzip6() throws {
        let dir = try TestEnvironment.makeTempDirectory("pipe-size")
        let input = TestData.sqlLike(bytes: 8_000_000)
        _ = FileManager.default.createFile(atPath: dir + "/in", contents: Data(input))
        try TestProcesses.run("/bin/sh", ["-c", "gzip -6 -c '\(dir)/in' > '\(dir)/ref.gz'"])
        let reference = try #require(try FileManager.default.attributesOfItem(atPath: dir + "/ref.gz")[.size] as? Int)
        let written = try writeFile(input, level: 6, in: dir)
        let ratio = Double(written.sizeBytes) / Double(reference)
        #expect(ratio <= 1.05, "ours \(written.sizeBytes) vs gzip -6 \(reference)")
        #expect(ratio > 0.9)
    }

    @Test func emptyInputIsAValidEmptyGzip() throws {
        let dir = try TestEnvironment.makeTempDirectory("pipe-empty")
        let written = try writeFile([], in: dir)
        #expect(written.uncompressedBytes == 0)
        let out = try TestProcesses.run(try gzipBinary(), ["-dc", written.path])
        #expect(out.stdout.isEmpty)
        #expect(try GzipVerifier.verify(path: written.path).uncompressedBytes == 0)
    }

    @Test func readingStraightFromAPipe() throws {
        let dir = try TestEnvironment.makeTempDirectory("pipe-fd")
        let input = TestData.sqlLike(bytes: 2_000_000)
        _ = FileManager.default.createFile(atPath: dir + "/in", contents: Data(input))
        let fd = open(dir + "/in", O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        let writer = try BackupFileWriter(destination: dir + "/p.gz", blockSize: 100_000, workers: 2)
        while try writer.read(from: fd, sourceName: "in") > 0 {}
        let written = try writer.finish()
        #expect(written.uncompressedBytes == UInt64(input.count))
        let cmp = try TestProcesses.run("/bin/sh", ["-c", "gzip -dc '\(dir)/p.gz' | cmp - '\(dir)/in' && echo same"])
        #expect(cmp.stdout == "same\n")
    }

    @Test func abortAndDeinitLeaveNothing() throws {
        let dir = try TestEnvironment.makeTempDirectory("pipe-abort")
        let input = TestData.sqlLike(bytes: 1_000_000)
        do {
            let writer = try BackupFileWriter(destination: dir + "/a.sql.gz")
            try writer.write(input)
            #expect(FileManager.default.fileExists(atPath: dir + "/.a.sql.gz.partial"))
            writer.abort()
            writer.abort()
            #expect(throws: BackupWriteError.self) { _ = try writer.finish() }
        }
        do {
            let writer = try BackupFileWriter(destination: dir + "/b.sql.gz")
            try writer.write(input)
            _ = writer
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [])
    }

    @Test func levelsTradeSizeForSpeed() throws {
        let dir = try TestEnvironment.makeTempDirectory("pipe-levels")
        let input = TestData.sqlLike(bytes: 2_000_000)
        let one = try writeFile(input, level: 1, in: dir, name: "1.gz")
        let nine = try writeFile(input, level: 9, in: dir, name: "9.gz")
        #expect(one.sizeBytes > nine.sizeBytes)
        #expect(try GzipVerifier.verify(path: one.path).uncompressedBytes == UInt64(input.count))
    }

    @Test func compressionLevelSetting() throws {
        #expect(try CompressionSettings.level(environment: [:]) == CompressionSettings.defaultLevel)
        #expect(try CompressionSettings.level(environment: ["BACKUP_COMPRESSION_LEVEL": "3"]) == 3)
        #expect(throws: ConfigError.self) { try CompressionSettings.level(environment: ["BACKUP_COMPRESSION_LEVEL": "0"]) }
        #expect(throws: ConfigError.self) { try CompressionSettings.level(environment: ["BACKUP_COMPRESSION_LEVEL": "fast"]) }
    }
}
