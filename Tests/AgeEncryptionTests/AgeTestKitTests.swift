import AgeEncryption
import CZlib
import Crypto
import Foundation
import Testing

/// Every vector of the CCTV age test kit through Backstop's decrypter: the expected class
/// (success or the named failure), and the SHA-256 of exactly the plaintext released.
@Suite struct AgeTestKitTests {
    /// `../shared/testdata/age-testkit` beside the repository (where CI lays shared/ too),
    /// or AGE_TESTKIT_DIR.
    static let folder: String = {
        if let dir = ProcessInfo.processInfo.environment["AGE_TESTKIT_DIR"], !dir.isEmpty { return dir }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repository.deletingLastPathComponent().appendingPathComponent("shared/testdata/age-testkit").path
    }()

    struct Vector {
        var name: String
        var fields: [(String, String)]
        var body: [UInt8]
        func values(_ key: String) -> [String] { fields.filter { $0.0 == key }.map(\.1) }
    }

    static func load(_ name: String) throws -> Vector {
        let data = Array(try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name)))
        var fields: [(String, String)] = []
        var offset = 0
        while true {
            guard let end = data[offset...].firstIndex(of: 10) else { throw AgeError(.headerFailure, "\(name): no blank line") }
            let line = String(decoding: data[offset..<end], as: UTF8.self)
            offset = end + 1
            if line.isEmpty { break }
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            fields.append((parts[0], parts.count > 1 ? parts[1] : ""))
        }
        var body = Array(data[offset...])
        if fields.contains(where: { $0 == ("compressed", "zlib") }) { body = try inflate(body) }
        return Vector(name: name, fields: fields, body: body)
    }

    static func inflate(_ input: [UInt8]) throws -> [UInt8] {
        var size = max(1 << 16, input.count * 8)
        while true {
            var output = [UInt8](repeating: 0, count: size)
            var length = uLongf(size)
            let rc = input.withUnsafeBufferPointer { source in
                output.withUnsafeMutableBufferPointer { uncompress($0.baseAddress, &length, source.baseAddress, uLong(input.count)) }
            }
            if rc == Z_OK { return Array(output.prefix(Int(length))) }
            guard rc == Z_BUF_ERROR else { throw AgeError(.headerFailure, "zlib \(rc)") }
            size *= 4
        }
    }

    /// The feature a vector needs that Backstop does not offer, if any.
    static func unsupportedFeature(_ vector: Vector) -> String? {
        if vector.values("armored").contains("yes") { return "armor" }
        if vector.values("identity").contains(where: { $0.hasPrefix("AGE-SECRET-KEY-PQ-") }) { return "post-quantum (mlkem768x25519)" }
        if vector.values("identity").isEmpty && !vector.values("passphrase").isEmpty { return "scrypt (passphrase)" }
        return nil
    }

    @Test func everyVectorGivesItsExpectedResult() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.folder).filter { $0 != "README.md" }.sorted()
        #expect(names.count == 143, "the kit has 143 vectors")
        var skipped: [String: [String]] = [:]
        var checked = 0
        for name in names {
            let vector = try Self.load(name)
            if let feature = Self.unsupportedFeature(vector) {
                skipped[feature, default: []].append(name)
                continue
            }
            let identities = try vector.values("identity").map { try AgeIdentity(parsing: $0) }
            let expect = try #require(vector.values("expect").first, "\(name): no expect")
            let decryptor = AgeDecryptor(identities: identities)
            var hasher = SHA256()
            var outcome = "success"
            do {
                // In 4 KiB slices, like a file read.
                try vector.body.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = min(4096, raw.count - offset)
                        try decryptor.update(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + n)])) { hasher.update(bufferPointer: $0) }
                        offset += n
                    }
                }
                try decryptor.finish { hasher.update(bufferPointer: $0) }
            } catch let error as AgeError {
                outcome = error.kind.rawValue
            }
            checked += 1
            #expect(outcome == expect, "\(name): expected \(expect), got \(outcome)")
            // Released plaintext must be exactly what the vector allows (none when it names none).
            let released = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            let allowed = vector.values("payload").first ?? SHA256.hash(data: [UInt8]()).map { String(format: "%02x", $0) }.joined()
            #expect(released == allowed, "\(name): released plaintext differs from what the vector allows")
        }
        let skippedCount = skipped.values.map(\.count).reduce(0, +)
        print("age test kit: \(checked) vectors checked, \(skippedCount) skipped:")
        for (feature, list) in skipped.sorted(by: { $0.key < $1.key }) { print("  \(feature): \(list.count) (\(list.joined(separator: ", ")))") }
        #expect(checked + skippedCount == names.count)
        // Only armor, scrypt and post-quantum vectors may be skipped: every X25519, header,
        // stanza, HMAC and STREAM vector ran.
        let skippedNames = skipped.values.flatMap { $0 }
        #expect(skippedNames.allSatisfy { $0.hasPrefix("armor_") || $0.hasPrefix("scrypt") || $0.hasPrefix("hybrid") }, "\(skippedNames)")
    }
}
