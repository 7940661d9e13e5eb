/// The master's side of the Redis replication handshake, as a plain state machine (no I/O):
/// feed it the bytes a replica sends, it says what to answer. The replica connects, sends
/// `PING`, maybe `AUTH` (when it has `masterauth`), `REPLCONF listening-port/ip-address/capa …`,
/// then `PSYNC <replid> <offset>` (or the old `SYNC`). Every command is accepted; PSYNC is
/// answered with `+FULLRESYNC <replid> 0` and the caller then sends `$<len>\r\n` and the RDB.
/// After that the replica only sends `REPLCONF ACK <offset>`, which needs no answer.
public struct ReplicationHandshake: Sendable {
    public enum Action: Sendable, Equatable {
        /// Send these bytes.
        case reply([UInt8])
        /// Send the `+FULLRESYNC` line (already in `reply` before it for PSYNC), then the RDB.
        case sendSnapshot
    }

    public let replicationID: String
    public private(set) var snapshotRequested = false
    /// The commands seen, for logs and tests (AUTH arguments are not kept).
    public private(set) var commands: [String] = []
    private var buffer: [UInt8] = []

    /// `replicationID`: 40 hexadecimal characters, new for each restore, so the target's
    /// replicas see a new history and resync from it.
    public init(replicationID: String) { self.replicationID = replicationID }

    /// A random 40-hex replication ID.
    public static func newReplicationID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<20).map { _ in hexByte(UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// Consumes `bytes`; returns the actions for every complete command in the buffer.
    /// Throws on bytes that are not the Redis protocol.
    public mutating func feed(_ bytes: [UInt8]) throws -> [Action] {
        buffer += bytes
        var actions: [Action] = []
        while let (arguments, used) = try Self.parseCommand(buffer) {
            buffer.removeFirst(used)
            guard let first = arguments.first else { continue }
            let name = first.uppercased()
            commands.append(name == "AUTH" ? "AUTH" : arguments.joined(separator: " "))
            switch name {
            case "PING":
                if !snapshotRequested { actions.append(.reply(Array("+PONG\r\n".utf8))) }
            case "AUTH", "REPLCONF":
                if !snapshotRequested { actions.append(.reply(Array("+OK\r\n".utf8))) }
            case "PSYNC":
                snapshotRequested = true
                actions.append(.reply(Array("+FULLRESYNC \(replicationID) 0\r\n".utf8)))
                actions.append(.sendSnapshot)
            case "SYNC":
                snapshotRequested = true
                actions.append(.sendSnapshot)
            default:
                actions.append(.reply(Array("-ERR backstop's restore master does not serve \(name)\r\n".utf8)))
            }
        }
        return actions
    }

    struct ProtocolError: Error, CustomStringConvertible {
        var description: String
    }

    /// One command (RESP array of bulk strings, or an inline line) and the bytes it used; nil
    /// when incomplete.
    static func parseCommand(_ b: [UInt8]) throws -> ([String], Int)? {
        guard let first = b.first else { return nil }
        func line(from start: Int) -> (String, Int)? {
            var i = start
            while i + 1 < b.count {
                if b[i] == 13 && b[i + 1] == 10 { return (String(decoding: b[start..<i], as: UTF8.self), i + 2) }
                i += 1
            }
            return nil
        }
        if first != UInt8(ascii: "*") {
            guard let (text, next) = line(from: 0) else {
                if b.count > 65536 { throw ProtocolError(description: "inline command longer than 64 KiB") }
                return nil
            }
            return (text.split(separator: " ").map(String.init), next)
        }
        guard let (countText, afterCount) = line(from: 1) else { return nil }
        guard let count = Int(countText), count >= 0, count < 1024 else { throw ProtocolError(description: "bad array length \(countText)") }
        var position = afterCount
        var arguments: [String] = []
        for _ in 0..<count {
            guard position < b.count else { return nil }
            guard b[position] == UInt8(ascii: "$") else { throw ProtocolError(description: "expected a bulk string") }
            guard let (lengthText, afterLength) = line(from: position + 1) else { return nil }
            guard let length = Int(lengthText), length >= 0, length < 1 << 20 else { throw ProtocolError(description: "bad bulk length \(lengthText)") }
            guard afterLength + length + 2 <= b.count else { return nil }
            arguments.append(String(decoding: b[afterLength..<(afterLength + length)], as: UTF8.self))
            position = afterLength + length + 2
        }
        return (arguments, position)
    }
}

func hexByte(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}

/// The newest RDB format each Redis release reads (the `REDIS00NN` header of a dump): a
/// server refuses to load a newer one, so the restore checks before it starts.
public enum RDBVersions {
    /// The highest RDB version `redis_version` (from `INFO server`) can load; nil when unknown.
    public static func maximum(forRedisVersion version: String) -> Int? {
        let parts = version.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return nil }
        let (major, minor) = (parts[0], parts[1])
        switch (major, minor) {
        case (2, 6), (2, 8), (3, 0): return 6
        case (3, 2): return 7
        case (4, _): return 8
        case (5, _), (6, _): return 9
        case (7, 0): return 10
        case (7, 2): return 11
        case (7, 4), (8, _): return 12
        default: return major > 8 ? 12 : nil
        }
    }

    /// The version in an RDB's first 9 bytes (`REDIS0011` → 11); nil when it is not an RDB.
    public static func version(ofHeader header: [UInt8]) -> Int? {
        guard header.count >= 9, Array(header[0..<5]) == Array("REDIS".utf8) else { return nil }
        return Int(String(decoding: header[5..<9], as: UTF8.self))
    }
}
