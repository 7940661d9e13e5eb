// Times the catalog's two hand-written JSON paths against Foundation on the same data, in one
// process, alternating the order every round:
//
// 1. decode: N `.meta` files as Backstop writes them (JSONCoding.encode of BackupMeta: dumps,
//    globals, Redis snapshots with their keyspace counts, base backups with their file lists and
//    LSNs, a quarter encrypted with recipients) decoded by `BackupMeta.decode` (MetaFastDecoder,
//    falling back to JSONDecoder) and by Foundation's JSONDecoder alone — from memory, and from
//    disk (one open+read per file in a folder, as a catalog scan reads them);
// 2. encode: `list --json` of N entries written by CatalogJSON.listing and by JSONEncoder from a
//    Codable row with the same settings (pretty, keys sorted, slashes unescaped); the two outputs
//    are compared byte for byte and the run fails if they differ.
//
// Arguments: N (default 100000), ROUNDS (default 5), a scratch folder (default a new one in /tmp).
// Prints the best CPU time of each path (thread CPU time: steady on a shared machine), per
// file, and the ratio. Both decoders must give
// equal BackupMeta values for every file, or the run fails.
import BackstopCore
import BackupCatalog
import Foundation
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
let count = args.count > 1 ? Int(args[1]) ?? 100_000 : 100_000
let rounds = args.count > 2 ? Int(args[2]) ?? 5 : 5
let scratch = args.count > 3 ? args[3] : NSTemporaryDirectory() + "meta-decode-\(getpid())"

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("meta-decode: \(message)\n".utf8))
    exit(1)
}

/// CPU seconds of this thread: the paths are single-threaded, and CPU time, unlike wall time,
/// does not grow when other work shares the machine's two cores.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// MARK: - The data set

/// A deterministic generator, so every run decodes the same files.
struct XorShift {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func hex(_ digits: Int) -> String {
        var s = ""
        while s.count < digits { s += String(next(), radix: 16) }
        return String(s.prefix(digits))
    }
}

func makeMetas(_ n: Int) -> [BackupMeta] {
    var rng = XorShift(state: 0x5EED_CAFE)
    let end = 1_796_000_000.0
    var out: [BackupMeta] = []
    out.reserveCapacity(n)
    for i in 0..<n {
        let started = end - Double(i) * 600
        let finished = started + Double(20 + i % 300)
        let size = 1_000_000 + rng.next() % 5_000_000_000
        let kind: BackupKind
        switch i % 20 {
        case 0..<8: kind = .postgresFull
        case 8..<10: kind = .postgresGlobals
        case 10..<16: kind = .redis
        default: kind = .postgresBase
        }
        let target = kind == .redis ? "redis" : kind == .postgresGlobals ? "globals" : ["app", "shop", "billing"][i % 3]
        let stamp = WallClock.fileStamp(started)
        let file: String
        switch kind {
        case .postgresFull: file = "/backups/postgres/psscript_\(target)_\(stamp).sql.gz"
        case .postgresGlobals: file = "/backups/postgres/globals_\(stamp).sql.gz"
        case .redis: file = "/backups/redis/redis_\(stamp).rdb.gz"
        case .postgresBase: file = "/backups/postgres/wal_\(stamp)"
        }
        var meta = BackupMeta(kind: kind, target: target, file: file, startedAt: started, finishedAt: finished,
                              sizeBytes: size, sha256: rng.hex(64), compression: "gzip:6",
                              serverVersion: kind == .redis ? nil : "PostgreSQL 15.18")
        meta.uncompressedBytes = size * 4
        switch kind {
        case .redis:
            meta.redisVersion = "7.0.15"
            meta.rdbVersion = 10
            meta.master = "mymaster 10.0.0.\(i % 3 + 1):6379"
            meta.source = "10.0.0.\(i % 3 + 2):6379"
            meta.sourceRole = "replica"
            meta.keys = ["db0": Int(rng.next() % 1_000_000), "db1": Int(rng.next() % 1000)]
            meta.expires = ["db0": Int(rng.next() % 1000)]
            meta.method = i % 2 == 0 ? "replication" : "bgsave"
            meta.rdbChecksum = "verified"
        case .postgresBase:
            meta.startLSN = "0/\(String(rng.next() % 0xFFFF_FFFF, radix: 16, uppercase: true))"
            meta.endLSN = "0/\(String(rng.next() % 0xFFFF_FFFF, radix: 16, uppercase: true))"
            meta.timeline = 1 + i % 3
            meta.files = ["base.tar.gz", "pg_wal.tar.gz", "backup_manifest"].map {
                BackupMeta.FileEntry(name: $0, sizeBytes: rng.next() % 1_000_000_000, sha256: rng.hex(64))
            }
        default:
            break
        }
        if i % 4 == 0 {
            meta.encryption = "age"
            meta.recipients = i % 8 == 0 ? rng.hex(16) : rng.hex(16) + "," + rng.hex(16)
        }
        out.append(meta)
    }
    return out
}

// MARK: - Timing

/// The best of `rounds` runs of each named closure, the order reversed every other round.
func race(_ paths: [(String, () -> Void)]) -> [String: Double] {
    var best: [String: Double] = [:]
    for r in 0..<rounds {
        for (name, body) in r % 2 == 0 ? paths : paths.reversed() {
            let t0 = now()
            body()
            let t = now() - t0
            best[name] = min(best[name] ?? .infinity, t)
        }
    }
    return best
}

func report(_ title: String, _ best: [String: Double], _ fast: String, _ foundation: String, per: Int) {
    print("\n\(title) (\(count) files, best of \(rounds), order alternating)")
    for name in [fast, foundation] {
        let t = best[name]!
        print("  " + name.padding(toLength: 38, withPad: " ", startingAt: 0) + String(format: "%8.3f s CPU  %7.2f µs/file", t, t / Double(per) * 1e6))
    }
    print("  ratio \(foundation) / hand-written: " + String(format: "%.1fx", best[foundation]! / best[fast]!))
}

let metas = makeMetas(count)
let files: [[UInt8]] = metas.map { meta in
    do { return try meta.encoded() } catch { fail("encoding a .meta: \(error)") }
}
let totalBytes = files.reduce(0) { $0 + $1.count }
print("data: \(count) .meta files as Backstop writes them, \(totalBytes / count) bytes on average, \(totalBytes / 1_048_576) MiB")

// Both decoders agree on every file (or the comparison means nothing).
for (i, bytes) in files.enumerated() {
    let fast: BackupMeta, slow: BackupMeta
    do {
        fast = try BackupMeta.decode(bytes)
        slow = try JSONDecoder().decode(BackupMeta.self, from: Data(bytes))
    } catch { fail("file \(i) does not decode: \(error)") }
    guard fast == slow, fast == metas[i] else { fail("file \(i): the decoders disagree") }
}

// MARK: 1. decode from memory

var sink = 0
let memory = race([
    ("BackupMeta.decode (MetaFastDecoder)", {
        for bytes in files { sink &+= (try? BackupMeta.decode(bytes))?.sizeBytes.map(Int.init) ?? 0 }
    }),
    ("JSONDecoder", {
        let decoder = JSONDecoder()
        for bytes in files { sink &+= (try? decoder.decode(BackupMeta.self, from: Data(bytes)))?.sizeBytes.map(Int.init) ?? 0 }
    }),
])
report("decode from memory", memory, "BackupMeta.decode (MetaFastDecoder)", "JSONDecoder", per: count)

// MARK: 1b. decode from disk (open + read + decode per file, as a scan does)

try? FileManager.default.removeItem(atPath: scratch)
do { try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true) } catch { fail("\(scratch): \(error)") }
defer { try? FileManager.default.removeItem(atPath: scratch) }
var names: [String] = []
names.reserveCapacity(count)
for (i, bytes) in files.enumerated() {
    let name = "\(scratch)/b\(i).meta"
    guard FileManager.default.createFile(atPath: name, contents: Data(bytes)) else { fail("cannot write \(name)") }
    names.append(name)
}

func readFile(_ path: String, into buffer: inout [UInt8]) -> Int {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { fail("open \(path)") }
    defer { close(fd) }
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    return max(n, 0)
}

let disk = race([
    ("BackupMeta.decode (MetaFastDecoder)", {
        var buffer = [UInt8](repeating: 0, count: 65536)
        for path in names {
            let n = readFile(path, into: &buffer)
            sink &+= (try? BackupMeta.decode(Array(buffer[0..<n])))?.sizeBytes.map(Int.init) ?? 0
        }
    }),
    ("JSONDecoder", {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let decoder = JSONDecoder()
        for path in names {
            let n = readFile(path, into: &buffer)
            sink &+= (try? decoder.decode(BackupMeta.self, from: Data(buffer[0..<n])))?.sizeBytes.map(Int.init) ?? 0
        }
    }),
])
report("decode from disk (open, read, decode)", disk, "BackupMeta.decode (MetaFastDecoder)", "JSONDecoder", per: count)

// MARK: 2. list --json

/// `list --json`'s row as a Codable type, for JSONEncoder (the same keys CatalogJSON writes).
struct ListingRow: Encodable {
    var encryption: String?
    var finishedAt: String?
    var kind: String
    var path: String
    var recipients: [String]?
    var sha256: String?
    var sizeBytes: UInt64
    var startedAt: String
    var state: String
    var target: String

    enum CodingKeys: String, CodingKey {
        case encryption, kind, path, recipients, sha256, state, target
        case finishedAt = "finished_at"
        case sizeBytes = "size_bytes"
        case startedAt = "started_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(encryption, forKey: .encryption)
        try c.encode(finishedAt, forKey: .finishedAt)
        try c.encode(kind, forKey: .kind)
        try c.encode(path, forKey: .path)
        try c.encode(recipients, forKey: .recipients)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(sizeBytes, forKey: .sizeBytes)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(state, forKey: .state)
        try c.encode(target, forKey: .target)
    }
}

let entries: [CatalogEntry] = metas.map { meta in
    let path = meta.file!
    return CatalogEntry(path: path, name: String(path.split(separator: "/").last!), kind: meta.kind!, target: meta.target!,
                        startedAt: WallClock.parseRFC3339(meta.startedAt!) ?? 0, finishedAt: meta.finishedAt.flatMap(WallClock.parseRFC3339),
                        sizeBytes: meta.sizeBytes!, meta: meta, state: .complete, isDirectory: meta.kind == .postgresBase)
}

func foundationListing(_ entries: [CatalogEntry]) -> [UInt8] {
    let rows = entries.map { e in
        ListingRow(encryption: e.meta?.encryption, finishedAt: e.finishedAt.map { WallClock.rfc3339($0) }, kind: e.kind.rawValue,
                   path: e.path, recipients: e.meta?.recipients.map { $0.split(separator: ",").map(String.init) },
                   sha256: e.meta?.sha256, sizeBytes: e.sizeBytes, startedAt: WallClock.rfc3339(e.startedAt),
                   state: e.state.rawValue, target: e.target)
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    do {
        var bytes = Array(try encoder.encode(rows))
        bytes.append(10)
        return bytes
    } catch { fail("JSONEncoder: \(error)") }
}

let hand = CatalogJSON.listing(entries, remote: false)
let viaFoundation = foundationListing(entries)
if hand != viaFoundation {
    let at = zip(hand, viaFoundation).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(hand.count, viaFoundation.count)
    let lo = max(0, at - 80)
    fail("list --json differs at byte \(at):\nCatalogJSON: \(String(decoding: hand[lo..<min(hand.count, at + 80)], as: UTF8.self))\nJSONEncoder: \(String(decoding: viaFoundation[lo..<min(viaFoundation.count, at + 80)], as: UTF8.self))")
}
print("\nlist --json: CatalogJSON and JSONEncoder give the same \(hand.count) bytes")
let listing = race([
    ("CatalogJSON.listing", { sink &+= CatalogJSON.listing(entries, remote: false).count }),
    ("JSONEncoder", { sink &+= foundationListing(entries).count }),
])
report("list --json of \(count) entries", listing, "CatalogJSON.listing", "JSONEncoder", per: count)
if sink == 42 { print("") }
