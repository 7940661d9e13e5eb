import AgeEncryption
import BackstopCore
import BackstopTestSupport
import BackupPipeline
import Foundation
import Testing

/// The pipeline with recipients: gzip → age → SHA-256 → temp file → fsync → rename.
@Suite struct EncryptedBackupFileWriterTests {
    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, needle.count <= haystack.count else { return false }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
            i += 1
        }
        return false
    }

    @Test func stockAgeThenGunzipGivesBackTheInput() throws {
        let age = try TestEnvironment.binary("age", package: "age")
        let dir = try TestEnvironment.makeTempDirectory("pipe-age")
        let identity = AgeIdentity.generate(), second = AgeIdentity.generate()
        try Data((identity.encoded + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/key.txt"))
        let input = TestData.sqlLike(bytes: 2_000_000) + TestData.random(bytes: 200_000)
        let writer = try BackupFileWriter(destination: dir + "/out.sql.gz.age", compressionLevel: 6, blockSize: 64 * 1024,
                                          workers: 2, recipients: [identity.recipient, second.recipient])
        var offset = 0
        while offset < input.count {
            let n = min(100_003, input.count - offset)
            try input.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
            offset += n
        }
        let written = try writer.finish()
        #expect(written.isEncrypted)
        #expect(written.recipientFingerprints == [identity.recipient.fingerprint, second.recipient.fingerprint])
        _ = FileManager.default.createFile(atPath: dir + "/in", contents: Data(input))
        let cmp = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(dir)/key.txt' '\(written.path)' | gzip -dc | cmp - '\(dir)/in' && echo same"])
        #expect(cmp.stdout == "same\n")
        let sha = try TestProcesses.run("/usr/bin/sha256sum", [written.path]).stdout.split(separator: " ").first.map(String.init)
        #expect(sha == written.sha256, "the checksum is of the file as stored")
        let size = try FileManager.default.attributesOfItem(atPath: written.path)[.size] as? Int
        #expect(size.map(UInt64.init) == written.sizeBytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["in", "key.txt", "out.sql.gz.age"])
    }

    /// Incompressible input passes through deflate almost verbatim, so a plain gzip file (and
    /// its `.partial`) holds the plaintext; the encrypted one must not, at any moment.
    @Test func noPlaintextOnDiskEvenInTheTemporaryFile() throws {
        let dir = try TestEnvironment.makeTempDirectory("pipe-age-leak")
        let input = TestData.random(bytes: 3_000_000, seed: 99)
        let probe = Array(input[1_000_000..<1_000_064])
        let recipient = AgeIdentity.generate().recipient
        for encrypted in [false, true] {
            let name = encrypted ? "e.gz.age" : "p.gz"
            let writer = try BackupFileWriter(destination: dir + "/" + name, compressionLevel: 1, blockSize: 64 * 1024,
                                              workers: 1, recipients: encrypted ? [recipient] : [])
            try input.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[0..<2_500_000])) }
            let partial = Array(try Data(contentsOf: URL(fileURLWithPath: writer.temporaryPath)))
            try input.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[2_500_000...])) }
            let written = try writer.finish()
            let stored = Array(try Data(contentsOf: URL(fileURLWithPath: written.path)))
            #expect(contains(partial, probe) == !encrypted, "\(name) partial")
            #expect(contains(stored, probe) == !encrypted, "\(name) final")
            #expect(stored.starts(with: Array("age-encryption.org/v1\n".utf8)) == encrypted)
        }
    }
}
