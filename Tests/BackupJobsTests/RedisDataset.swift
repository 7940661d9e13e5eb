import BackstopCore
import BackstopTestSupport
import Foundation
import RedisClient

/// A Redis data set with every value type, several logical databases, binary-safe keys and
/// values and TTLs; and a reader that captures a server's whole contents for comparison.
enum RedisDataset {
    /// One key's type, value (canonical: sets and hashes sorted) and TTL in ms (-1: none).
    struct Entry: Equatable, CustomStringConvertible {
        var type: String
        var value: [[UInt8]]
        var pttl: Int64
        var description: String { "\(type) (\(value.count) parts, pttl \(pttl))" }
    }

    typealias Contents = [Int: [[UInt8]: Entry]]

    static let databases = [0, 1, 5, 15]

    /// Fills databases 0, 1, 5 and 15 of the server behind `connection`.
    static func fill(_ connection: RedisConnection) throws {
        func run(_ args: [[UInt8]]) throws {
            let reply = try connection.command(bytes: args)
            if case .error(let message) = reply { throw TestSupportError("\(args.first.map { String(decoding: $0, as: UTF8.self) } ?? "") failed: \(message)") }
        }
        func s(_ text: String) -> [UInt8] { Array(text.utf8) }
        let binary: [UInt8] = (0...255).map { UInt8($0) } + [0, 0, 13, 10, 0xff, 0xfe]
        for db in databases {
            try run([s("SELECT"), s("\(db)")])
            let p = "db\(db):"
            // Strings: plain, integer-encoded, empty, large (not LZF-friendly), binary key and value.
            try run([s("SET"), s(p + "string"), s("héllo wörld ✓")])
            try run([s("SET"), s(p + "int"), s("123456789")])
            try run([s("SET"), s(p + "empty"), []])
            try run([s("SET"), s(p + "large"), (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ $0 >> 8) }])
            try run([s("SET"), s(p) + [0, 0xff, 13, 10] + s("binary-key"), binary])
            // With TTLs (an hour), and one with a millisecond-precise expiry.
            try run([s("SET"), s(p + "ttl"), s("expires"), s("EX"), s("3600")])
            try run([s("SET"), s(p + "pttl"), binary, s("PX"), s("7200123")])
            // Hashes: small (listpack) and large (hashtable).
            try run([s("HSET"), s(p + "hash"), s("f1"), s("v1"), s("f2"), binary, [0, 1], s("zero-field")])
            var bigHash = [s("HSET"), s(p + "bighash")]
            for i in 0..<600 { bigHash += [s("field\(i)"), s("value \(i) \(db)")] }
            try run(bigHash)
            // Lists: small and long.
            try run([s("RPUSH"), s(p + "list"), s("a"), binary, s("c"), s("a")])
            try run([s("RPUSH"), s(p + "biglist")] + (0..<2000).map { s("item-\($0)") })
            // Sets: integers (intset), strings, large.
            try run([s("SADD"), s(p + "intset"), s("1"), s("2"), s("3"), s("-40000")])
            try run([s("SADD"), s(p + "set"), s("x"), s("y"), binary])
            try run([s("SADD"), s(p + "bigset")] + (0..<1000).map { s("member-\($0)") })
            // Sorted sets: small and large, odd scores.
            try run([s("ZADD"), s(p + "zset"), s("1.5"), s("one"), s("-inf"), s("low"), s("inf"), s("high"), s("0"), binary])
            var bigZ = [s("ZADD"), s(p + "bigzset")]
            for i in 0..<500 { bigZ += [s("\(Double(i) / 3)"), s("m\(i)")] }
            try run(bigZ)
            try run([s("EXPIRE"), s(p + "bigzset"), s("5000")])
            // Streams with a consumer group.
            for i in 0..<50 {
                try run([s("XADD"), s(p + "stream"), s("*"), s("n"), s("\(i)"), s("payload"), binary])
            }
            try run([s("XGROUP"), s("CREATE"), s(p + "stream"), s("readers"), s("0")])
            try run([s("XREADGROUP"), s("GROUP"), s("readers"), s("alice"), s("COUNT"), s("7"), s("STREAMS"), s(p + "stream"), s(">")])
        }
        try run([s("SELECT"), s("0")])
    }

    /// Every key of every database with its type, value and TTL.
    static func contents(of endpoint: Endpoint, username: String? = nil, password: Secret? = nil) throws -> Contents {
        let connection = try RedisConnection(to: endpoint, username: username, password: password, timeout: 30)
        var result: Contents = [:]
        func bytesList(_ reply: RedisReply) -> [[UInt8]] {
            (reply.array ?? []).map { element in
                if case .bulk(let bytes) = element { return bytes }
                return Array((element.string ?? "\(element)").utf8)
            }
        }
        func sorted(_ items: [[UInt8]]) -> [[UInt8]] { items.sorted { $0.lexicographicallyPrecedes($1) } }
        for db in 0..<16 {
            _ = try connection.call(["SELECT", "\(db)"])
            let keys = bytesList(try connection.call(["KEYS", "*"]))
            guard !keys.isEmpty else { continue }
            var entries: [[UInt8]: Entry] = [:]
            for key in keys {
                func call(_ name: String, _ rest: [String] = []) throws -> RedisReply {
                    try connection.command(bytes: [Array(name.utf8), key] + rest.map { Array($0.utf8) })
                }
                let type = try call("TYPE").string ?? "?"
                var value: [[UInt8]]
                switch type {
                case "string":
                    if case .bulk(let bytes) = try call("GET") { value = [bytes] } else { value = [] }
                case "hash":
                    let flat = bytesList(try call("HGETALL"))
                    value = sorted(stride(from: 0, to: flat.count, by: 2).map { flat[$0] + [0x1f] + flat[$0 + 1] })
                case "list":
                    value = bytesList(try call("LRANGE", ["0", "-1"]))
                case "set":
                    value = sorted(bytesList(try call("SMEMBERS")))
                case "zset":
                    value = bytesList(try call("ZRANGE", ["0", "-1", "WITHSCORES"]))
                case "stream":
                    value = flatten(try call("XRANGE", ["-", "+"]))
                    value += flatten(try call("XINFO", ["GROUPS"])).filter { !$0.isEmpty }
                default:
                    value = []
                }
                let pttl = try call("PTTL").integer ?? -3
                entries[key] = Entry(type: type, value: value, pttl: pttl)
            }
            result[db] = entries
        }
        return result
    }

    private static func flatten(_ reply: RedisReply) -> [[UInt8]] {
        switch reply {
        case .array(let elements): return elements.flatMap(flatten)
        case .bulk(let bytes): return [bytes]
        case .integer(let n): return [Array("\(n)".utf8)]
        case .status(let text): return [Array(text.utf8)]
        default: return [[]]
        }
    }

    /// Differences between two captures: missing or extra keys, other types or values, TTLs
    /// further apart than `ttlTolerance` ms (or one without a TTL). Empty when equal.
    static func differences(_ source: Contents, _ restored: Contents, ttlTolerance: Int64 = 120_000) -> [String] {
        var problems: [String] = []
        for db in Set(source.keys).union(restored.keys).sorted() {
            let a = source[db] ?? [:], b = restored[db] ?? [:]
            for key in Set(a.keys).union(b.keys) {
                let name = "db\(db) \(String(decoding: key, as: UTF8.self).debugDescription)"
                guard let x = a[key] else { problems.append("\(name): extra in the restore"); continue }
                guard let y = b[key] else { problems.append("\(name): missing from the restore"); continue }
                if x.type != y.type { problems.append("\(name): type \(x.type) vs \(y.type)") }
                if x.value != y.value { problems.append("\(name): value differs (\(x) vs \(y))") }
                if (x.pttl < 0) != (y.pttl < 0) || abs(x.pttl - y.pttl) > ttlTolerance {
                    problems.append("\(name): pttl \(x.pttl) vs \(y.pttl)")
                }
            }
        }
        return problems
    }

    /// Gunzips a backup into a fresh folder and starts a throwaway redis-server on it.
    static func load(backup path: String) throws -> StandaloneRedis {
        let directory = try TestEnvironment.makeTempDirectory("redis-restore")
        try TestProcesses.run("/bin/sh", ["-c", "gunzip -c '\(path)' > '\(directory)/restored.rdb'"], check: true)
        return try StandaloneRedis(directory: directory, dbfilename: "restored.rdb")
    }
}
