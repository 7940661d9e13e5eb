import BackstopCore
import Dispatch
import Foundation
import Synchronization

/// `backstop list --json`, written as bytes into one buffer. The layout is the one
/// JSONSerialization printed before (pretty, keys sorted, slashes unescaped), so scripts that
/// read it see no change; building 100,000 dictionaries of `Any` for JSONSerialization took
/// seconds, this takes milliseconds.
public enum CatalogJSON {
    /// The JSON array of `entries` (path, kind, target, size_bytes, sha256, started_at,
    /// finished_at, state, and `location: "s3"` for remote ones), newline-terminated.
    /// `encryption` and `recipients` (a list of key fingerprints) come from the `.meta`;
    /// `state` is `meta_unreadable` for a `.meta` that cannot be read; remote entries carry
    /// their `storage_class` from `storageClasses` (by path).
    public static func listing(_ entries: [CatalogEntry], remote: Bool, storageClasses: [String: String] = [:]) -> [UInt8] {
        var all: [UInt8] = []
        all.reserveCapacity(64 + entries.count * 420)
        write(entries, remote: remote, storageClasses: storageClasses) { all.append(contentsOf: $0) }
        return all
    }

    /// `listing` handed to `sink` a piece at a time, so printing 100,000 entries never holds
    /// the whole 40 MB text, nor the copy `Data` of it would make (each page of a fresh buffer
    /// is a page fault and a cleared page). The entries are encoded on all cores, a window of
    /// `lanes` × 2,048 at a time, each lane into its own reused buffer; the pieces reach `sink`
    /// in order.
    public static func write(_ entries: [CatalogEntry], remote: Bool, storageClasses: [String: String] = [:],
                             to sink: (UnsafeBufferPointer<UInt8>) -> Void) {
        if entries.isEmpty {
            Array("[\n\n]\n".utf8).withUnsafeBufferPointer { sink($0) }
            return
        }
        Array("[\n".utf8).withUnsafeBufferPointer { sink($0) }
        let piece = 2048
        let lanes = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
        let buffers = Mutex<[[UInt8]]>(Array(repeating: [], count: lanes))
        var start = 0
        while start < entries.count {
            let window = min(entries.count - start, piece * lanes)
            let used = (window + piece - 1) / piece
            let first = start
            DispatchQueue.concurrentPerform(iterations: used) { lane in
                var out = buffers.withLock { all in
                    let mine = all[lane]
                    all[lane] = []
                    return mine
                }
                out.removeAll(keepingCapacity: true)
                out.reserveCapacity(piece * 440)
                let from = first + lane * piece
                entries.withUnsafeBufferPointer { buffer in
                    for i in from..<min(entries.count, from + piece) {
                        encode(buffer[i], last: i == entries.count - 1, remote: remote, storageClasses: storageClasses, into: &out)
                    }
                }
                buffers.withLock { $0[lane] = out }
            }
            buffers.withLock { all in
                for lane in 0..<used { all[lane].withUnsafeBufferPointer { sink($0) } }
            }
            start += window
        }
        Array("]\n".utf8).withUnsafeBufferPointer { sink($0) }
    }

    /// One entry of the array (and the separator after it).
    private static func encode(_ e: borrowing CatalogEntry, last: Bool, remote: Bool, storageClasses: [String: String], into out: inout [UInt8]) {
        out.append(contentsOf: "  {\n".utf8)
        field("encryption", &out)
        if let enc = e.meta?.encryption { string(enc, &out) } else { out.append(contentsOf: "null".utf8) }
        next(&out)
        field("finished_at", &out)
        if let f = e.finishedAt { string(WallClock.rfc3339(f), &out) } else { out.append(contentsOf: "null".utf8) }
        next(&out)
        field("kind", &out)
        string(e.kind.rawValue, &out)
        if remote {
            next(&out)
            field("location", &out)
            string("s3", &out)
        }
        next(&out)
        field("path", &out)
        string(e.path, &out)
        next(&out)
        field("recipients", &out)
        if let list = e.meta?.recipients {
            let fingerprints = list.split(separator: ",")
            if fingerprints.isEmpty {
                out.append(contentsOf: "[\n\n    ]".utf8)
            } else {
                out.append(contentsOf: "[\n".utf8)
                for (n, fp) in fingerprints.enumerated() {
                    out.append(contentsOf: "      ".utf8)
                    string(String(fp), &out)
                    out.append(contentsOf: (n == fingerprints.count - 1 ? "\n" : ",\n").utf8)
                }
                out.append(contentsOf: "    ]".utf8)
            }
        } else {
            out.append(contentsOf: "null".utf8)
        }
        next(&out)
        field("sha256", &out)
        if let sum = e.meta?.sha256 { string(sum, &out) } else { out.append(contentsOf: "null".utf8) }
        next(&out)
        field("size_bytes", &out)
        out.append(contentsOf: String(e.sizeBytes).utf8)
        next(&out)
        field("started_at", &out)
        string(WallClock.rfc3339(e.startedAt), &out)
        next(&out)
        field("state", &out)
        string(e.metaUnreadable ? "meta_unreadable" : e.state.rawValue, &out)
        next(&out)
        if remote {
            field("storage_class", &out)
            if let c = storageClasses[e.path] { string(c, &out) } else { out.append(contentsOf: "null".utf8) }
            next(&out)
        }
        field("target", &out)
        string(e.target, &out)
        out.append(contentsOf: "\n  }".utf8)
        out.append(contentsOf: (last ? "\n" : ",\n").utf8)
    }

    private static func field(_ name: StaticString, _ out: inout [UInt8]) {
        out.append(contentsOf: "    \"".utf8)
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: "\" : ".utf8)
    }

    private static func next(_ out: inout [UInt8]) { out.append(contentsOf: ",\n".utf8) }

    /// A JSON string: quotes, backslashes and control characters escaped, everything else
    /// (slashes, non-ASCII) as it is.
    static func string(_ s: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Almost every string (paths, stamps, checksums) needs no escape: copied whole.
        var plain = s
        let clean = plain.withUTF8 { bytes -> Bool in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if !clean { escaped(s, &out) }
        out.append(UInt8(ascii: "\""))
    }

    private static func escaped(_ s: String, _ out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x08: out.append(contentsOf: [92, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [92, UInt8(ascii: "f")])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20: out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
    }
}
