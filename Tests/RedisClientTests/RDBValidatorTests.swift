import BackstopTestSupport
import Testing
@testable import RedisClient

/// CRC-64 and the RDB checks, without a server.
@Suite("RDBValidator and CRC64")
struct RDBValidatorTests {
    /// A syntactically plausible RDB: header, body, EOF opcode, CRC-64 little-endian.
    static func rdb(version: String = "0011", body: [UInt8], checksum: UInt64? = nil) -> [UInt8] {
        var bytes = Array("REDIS\(version)".utf8) + body + [0xff]
        let crc = checksum ?? CRC64.checksum(bytes)
        for index in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: crc >> (8 * UInt64(index)))) }
        return bytes
    }

    static func validate(_ bytes: [UInt8], chunk: Int) throws -> RDBValidator.Summary {
        var validator = RDBValidator()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            try validator.update(Array(bytes[offset..<end]))
            offset = end
        }
        return try validator.finish()
    }

    @Test("CRC-64 (Jones, reflected) check value")
    func checkValue() {
        #expect(CRC64.checksum("123456789") == 0xe9c6d914c4b8d9ca)
        #expect(CRC64.reference(Array("123456789".utf8)) == 0xe9c6d914c4b8d9ca)
        #expect(CRC64.checksum([]) == 0)
    }

    @Test("slice-by-8 equals bit-at-a-time, across lengths and split updates")
    func sliceBy8() {
        var generator = SeededGenerator(seed: 7)
        for length in [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099] {
            let data = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            #expect(CRC64.checksum(data) == CRC64.reference(data))
            let split = Int(generator.next() % UInt64(length))
            var crc = CRC64()
            crc.update(Array(data[..<split]))
            crc.update(Array(data[split...]))
            #expect(crc.value == CRC64.reference(data))
        }
    }

    @Test("a whole file verifies in any chunking", arguments: [1, 3, 8, 9, 17, 4096])
    func verifies(chunk: Int) throws {
        let body = (0..<500).map { UInt8($0 % 251) }
        let file = Self.rdb(body: body)
        let summary = try Self.validate(file, chunk: chunk)
        #expect(summary.rdbVersion == 11)
        #expect(summary.bytes == Int64(file.count))
        #expect(summary.checksum == .verified(CRC64.checksum(Array(file.dropLast(8)))))
    }

    @Test("one flipped bit anywhere fails the checksum")
    func corrupted() throws {
        let file = Self.rdb(body: (0..<300).map { UInt8($0 % 200) })
        for position in [9, 100, 200, file.count - 10] {
            var bad = file
            bad[position] ^= 0x10
            #expect(throws: RDBValidator.Failure.self) { _ = try Self.validate(bad, chunk: 13) }
        }
    }

    @Test("a truncated file fails")
    func truncated() throws {
        let file = Self.rdb(body: (0..<300).map { UInt8($0 % 200) })
        for cut in [0, 5, 9, 17, 150, file.count - 1] {
            #expect(throws: RDBValidator.Failure.self) { _ = try Self.validate(Array(file.prefix(cut)), chunk: 64) }
        }
    }

    @Test("checksum 0 is reported as disabled, not verified")
    func disabled() throws {
        let summary = try Self.validate(Self.rdb(body: [1, 2, 3], checksum: 0), chunk: 5)
        #expect(summary.checksum == .disabled)
    }

    @Test("a stream that is not an RDB fails on its first bytes")
    func badMagic() throws {
        var validator = RDBValidator()
        #expect(throws: RDBValidator.Failure.badMagic(Array("-ER".utf8))) { try validator.update(Array("-ER".utf8)) }
        var version = RDBValidator()
        #expect(throws: RDBValidator.Failure.self) { try version.update(Array("REDIS00x1".utf8)) }
    }
}
