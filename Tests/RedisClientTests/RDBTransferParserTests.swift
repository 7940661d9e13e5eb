import BackstopTestSupport
import Testing
@testable import RedisClient

/// The replication framing, without a server: every case the master can produce.
@Suite("RDBTransferParser")
struct RDBTransferParserTests {
    static let mark = Array(String(repeating: "0123456789abcdef", count: 3).prefix(40).utf8)

    /// Feeds `stream` in the given chunk sizes (cycled) and returns (payload, complete).
    static func run(_ stream: [UInt8], chunks: [Int]) throws -> (payload: [UInt8], parser: RDBTransferParser) {
        var parser = RDBTransferParser()
        var payload: [UInt8] = []
        var offset = 0
        var index = 0
        while offset < stream.count {
            let size = min(max(1, chunks[index % chunks.count]), stream.count - offset)
            index += 1
            try stream[offset..<(offset + size)].withUnsafeBytes { raw in
                _ = try parser.feed(raw) { payload.append(contentsOf: $0) }
            }
            offset += size
        }
        return (payload, parser)
    }

    static func body(_ count: Int) -> [UInt8] {
        var generator = SeededGenerator(seed: UInt64(count))
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    }

    @Test("length framing after keepalives, in any chunking; bytes after the payload are ignored",
          arguments: [[1], [2, 3, 5], [7], [4096], [39, 41, 40]])
    func lengthFraming(chunks: [Int]) throws {
        let payload = Self.body(1000)
        let stream = Array("\n\n\n$1000\r\n".utf8) + payload + Array("*1\r\n$4\r\nPING\r\n".utf8)
        let (out, parser) = try Self.run(stream, chunks: chunks)
        #expect(out == payload)
        #expect(parser.isComplete)
        #expect(parser.keepalives == 3)
        #expect(parser.framing == .length(1000))
        #expect(parser.payloadBytes == 1000)
        try parser.finish()
    }

    @Test("diskless EOF-mark framing: the mark is stripped, in any chunking",
          arguments: [[1], [3, 7], [40], [41], [39], [100_000]])
    func eofFraming(chunks: [Int]) throws {
        let payload = Self.body(777)
        let stream = Array("\n+FULLRESYNC abc 0\r\n\n$EOF:".utf8) + Self.mark + Array("\r\n".utf8) + payload + Self.mark
        let (out, parser) = try Self.run(stream, chunks: chunks)
        #expect(out == payload)
        #expect(parser.isComplete)
        #expect(parser.framing == .eofMark)
        #expect(parser.keepalives == 2)
        try parser.finish()
    }

    @Test("a diskless payload shorter than the mark")
    func tinyEOFPayload() throws {
        let stream = Array("$EOF:".utf8) + Self.mark + Array("\r\n".utf8) + [1, 2, 3] + Self.mark
        let (out, parser) = try Self.run(stream, chunks: [1])
        #expect(out == [1, 2, 3])
        #expect(parser.isComplete)
    }

    @Test("error replies are refusals carrying the server's words", arguments: [
        "-NOAUTH Authentication required.", "-ERR Can't SYNC while not connected with my master",
        "-NOPERM this user has no permissions to run the 'sync' command",
    ])
    func refusals(line: String) throws {
        var parser = RDBTransferParser()
        let error = #expect(throws: RDBTransferParser.Failure.self) {
            _ = try parser.feed(Array("\n\n\(line)\r\n".utf8))
        }
        #expect(error == .refused(String(line.dropFirst())))
    }

    @Test("garbage before the payload is rejected", arguments: ["hello\r\n", "$abc\r\n", "$-5\r\n", "$EOF:short\r\n", ":12\r\n"])
    func malformed(text: String) throws {
        var parser = RDBTransferParser()
        #expect(throws: RDBTransferParser.Failure.self) { _ = try parser.feed(Array(text.utf8)) }
    }

    @Test("an endless line is rejected instead of buffered")
    func endlessLine() throws {
        var parser = RDBTransferParser()
        #expect(throws: RDBTransferParser.Failure.self) { _ = try parser.feed([UInt8](repeating: 65, count: 5000)) }
    }

    @Test("a connection closed early is a truncated transfer, never complete")
    func truncated() throws {
        var before = RDBTransferParser()
        _ = try before.feed(Array("\n\n".utf8))
        #expect(throws: RDBTransferParser.Failure.truncated(framing: nil, payloadBytes: 0)) { try before.finish() }

        var length = RDBTransferParser()
        let out = try length.feed(Array("$100\r\n".utf8) + Self.body(60))
        #expect(out.count == 60)
        #expect(!length.isComplete)
        #expect(throws: RDBTransferParser.Failure.truncated(framing: .length(100), payloadBytes: 60)) { try length.finish() }

        var diskless = RDBTransferParser()
        // Cut in the middle of the closing mark: the partial mark must not leak as payload.
        let partial = Array("$EOF:".utf8) + Self.mark + Array("\r\n".utf8) + Self.body(100) + Array(Self.mark.prefix(20))
        let got = try diskless.feed(partial)
        #expect(got.count == 80)
        #expect(!diskless.isComplete)
        #expect(throws: RDBTransferParser.Failure.self) { try diskless.finish() }
    }

    @Test("random payloads and chunkings round-trip in both framings")
    func randomised() throws {
        var generator = SeededGenerator(seed: 42)
        for round in 0..<200 {
            let size = Int(generator.next() % 3000)
            let payload = Self.body(size + round)
            let chunks = (0..<5).map { _ in Int(generator.next() % 97) + 1 }
            let keepalives = String(repeating: "\n", count: Int(generator.next() % 4))
            let lengthStream = Array("\(keepalives)$\(payload.count)\r\n".utf8) + payload
            let eofStream = Array("\(keepalives)$EOF:".utf8) + Self.mark + Array("\r\n".utf8) + payload + Self.mark
            for stream in [lengthStream, eofStream] {
                let (out, parser) = try Self.run(stream, chunks: chunks)
                #expect(out == payload)
                #expect(parser.isComplete || payload.isEmpty && stream == lengthStream)
            }
        }
    }
}

