import AgeEncryption
import BackstopTestSupport
import Foundation
import Testing

/// Interop with Debian's `age` (apt-get install age): both directions, real binaries.
@Suite struct AgeInteropTests {
    private func sample(_ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
    }

    @Test(arguments: [0, 100, 65_536, 300_001])
    func stockAgeDecryptsWhatBackstopWrites(size: Int) throws {
        let age = try TestEnvironment.binary("age", package: "age")
        let dir = try TestEnvironment.makeTempDirectory("age-interop")
        let identity = AgeIdentity.generate()
        try Data((identity.encoded + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/key.txt"))
        let plaintext = sample(size)
        try Data(try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])).write(to: URL(fileURLWithPath: dir + "/f.age"))
        // Through stdout: age creates no -o file for an empty plaintext.
        try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(dir)/key.txt' '\(dir)/f.age' > '\(dir)/out'"])
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/out"))) == plaintext)
    }

    @Test(arguments: [0, 100, 65_536, 300_001])
    func backstopDecryptsWhatStockAgeWrites(size: Int) throws {
        let age = try TestEnvironment.binary("age", package: "age")
        let keygen = try TestEnvironment.binary("age-keygen", package: "age")
        let dir = try TestEnvironment.makeTempDirectory("age-interop")
        try TestProcesses.run(keygen, ["-o", dir + "/key.txt"])
        let keyText = try String(contentsOfFile: dir + "/key.txt", encoding: .utf8)
        let identities = try AgeIdentity.parseFile(keyText, name: "key.txt")
        let recipient = try TestProcesses.run(keygen, ["-y", dir + "/key.txt"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(identities[0].recipient.encoded == recipient)
        let plaintext = sample(size)
        try Data(plaintext).write(to: URL(fileURLWithPath: dir + "/in"))
        let other = AgeIdentity.generate().recipient.encoded
        try TestProcesses.run(age, ["-r", other, "-r", recipient, "-o", dir + "/f.age", dir + "/in"])
        let file = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/f.age")))
        #expect(try AgeDecryptor.decrypt(file, identities: identities) == plaintext)
        let wrong = try #require(throws: AgeError.self) { try AgeDecryptor.decrypt(file, identities: [AgeIdentity.generate()]) }
        #expect(wrong.kind == .noMatch)
    }
}
