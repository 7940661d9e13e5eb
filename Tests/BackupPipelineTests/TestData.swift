import BackstopTestSupport
import Foundation

/// Deterministic input that compresses like a real SQL dump: COPY lines with ids, words,
/// e-mail addresses, timestamps, JSON and numbers, plus some incompressible bytes (bytea).
enum TestData {
    static func sqlLike(bytes target: Int, seed: UInt64 = 42) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
                     "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
                     "Zürich", "café", "naïve", "東京", "Ωmega", "script", "backup", "restore", "payment", "invoice"]
        var out: [UInt8] = []
        out.reserveCapacity(target + 512)
        out += Array("COPY public.items (id, name, email, created_at, payload, amount, blob) FROM stdin;\n".utf8)
        var id = 0
        while out.count < target {
            id += 1
            let w1 = words[Int(rng.next() % UInt64(words.count))], w2 = words[Int(rng.next() % UInt64(words.count))]
            let ts = "2024-\(String(format: "%02d", 1 + rng.next() % 12))-\(String(format: "%02d", 1 + rng.next() % 28)) \(String(format: "%02d:%02d:%02d", rng.next() % 24, rng.next() % 60, rng.next() % 60))+00"
            let amount = "\(rng.next() % 100000).\(String(format: "%02d", rng.next() % 100))"
            var blob = "\\\\x"
            for _ in 0..<(rng.next() % 24) { blob += String(format: "%02x", rng.next() & 0xff) }
            let line = "\(id)\t\(w1) \(w2)\t\(w1.lowercased())\(rng.next() % 1000)@example.com\t\(ts)\t{\"tags\": [\"\(w2)\"], \"score\": \(rng.next() % 100)}\t\(amount)\t\(blob)\n"
            out += Array(line.utf8)
        }
        out += Array("\\.\n".utf8)
        return out
    }

    static func random(bytes: Int, seed: UInt64 = 7) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        return (0..<bytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }
}
