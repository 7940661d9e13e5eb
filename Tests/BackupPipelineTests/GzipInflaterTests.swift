import BackstopTestSupport
import BackupPipeline
import Foundation
import Testing

/// The one inflater against real gzip data: files from the project's own compressor and from
/// `/bin/gzip` (single and `cat a.gz b.gz` multi-member), fed in slices of every awkward size
/// and drained through output buffers down to one byte, always compared with `gzip -dc`.
@Suite struct GzipInflaterTests {
    /// A gzip file and what `gzip -dc` makes of it.
    struct Sample {
        var gz: [UInt8]
        var plain: [UInt8]
        var members: Int
        /// Where each member ends in `gz` (for splitting exactly at a boundary).
        var memberEnds: [Int]
    }

    static func read(_ path: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// `gzip -dc` of `path`, the reference output.
    static func gunzip(_ path: String) throws -> [UInt8] {
        try TestProcesses.run("/bin/sh", ["-c", "gzip -dc '\(path)' > '\(path).out'"])
        return try read(path + ".out")
    }

    /// Our compressor's file, /bin/gzip's, and a three-member concatenation of both kinds.
    static func samples() throws -> [String: Sample] {
        let dir = try TestEnvironment.makeTempDirectory("inflater")
        let sql = TestData.sqlLike(bytes: 700_000)
        let writer = try BackupFileWriter(destination: dir + "/ours.gz", blockSize: 128 * 1024)
        try writer.write(sql)
        _ = try writer.finish()
        try Data(TestData.random(bytes: 50_000) + Array(repeating: 0, count: 300_000)).write(to: URL(fileURLWithPath: dir + "/b"))
        try Data("second member\n".utf8).write(to: URL(fileURLWithPath: dir + "/c"))
        try TestProcesses.run("/bin/sh", ["-c", "cd '\(dir)' && gzip -c b > b.gz && gzip -9 -c c > c.gz && cat ours.gz b.gz c.gz > multi.gz"])
        let ours = try read(dir + "/ours.gz"), b = try read(dir + "/b.gz"), c = try read(dir + "/c.gz")
        #expect(try gunzip(dir + "/ours.gz") == sql)
        return [
            "ours": Sample(gz: ours, plain: sql, members: 1, memberEnds: [ours.count]),
            "gzip": Sample(gz: b, plain: try gunzip(dir + "/b.gz"), members: 1, memberEnds: [b.count]),
            "multi": Sample(gz: try read(dir + "/multi.gz"), plain: try gunzip(dir + "/multi.gz"), members: 3,
                            memberEnds: [ours.count, ours.count + b.count, ours.count + b.count + c.count]),
        ]
    }

    static let cached = Result { try samples() }

    /// Feeds `gz` in slices cut at `cuts`, collects the output and finishes.
    static func inflate(_ gz: [UInt8], cuts: [Int], outputSize: Int) throws -> (GzipInflater, [UInt8]) {
        let inflater = try GzipInflater(outputSize: outputSize)
        var out: [UInt8] = []
        var start = 0
        for cut in cuts + [gz.count] where cut >= start {
            try inflater.feed(Array(gz[start..<cut])) { out.append(contentsOf: $0) }
            start = cut
        }
        try inflater.finish { out.append(contentsOf: $0) }
        return (inflater, out)
    }

    static func slices(of count: Int, size: Int) -> [Int] {
        Array(stride(from: size, to: count, by: size))
    }

    @Test("every sample inflates to gzip -dc's bytes, whatever the input slices and output buffer",
          arguments: ["ours", "gzip", "multi"], [(4096, 256 * 1024), (1 << 20, 1), (7, 64), (65_536, 4096)])
    func matchesGunzip(name: String, sizes: (slice: Int, output: Int)) throws {
        let sample = try #require(try Self.cached.get()[name])
        let (inflater, out) = try Self.inflate(sample.gz, cuts: Self.slices(of: sample.gz.count, size: sizes.slice),
                                               outputSize: sizes.output)
        #expect(out.count == sample.plain.count)
        #expect(out == sample.plain)
        #expect(inflater.members == sample.members)
        #expect(inflater.uncompressedBytes == UInt64(sample.plain.count))
        #expect(inflater.compressedBytes == UInt64(sample.gz.count))
        #expect(!inflater.inMember)
    }

    @Test("whole input in one slice with a one-byte output buffer: the output zlib holds after the last input is drained")
    func lastSliceDrained() throws {
        for sample in try Self.cached.get().values {
            let (inflater, out) = try Self.inflate(sample.gz, cuts: [], outputSize: 1)
            #expect(out == sample.plain)
            #expect(inflater.members == sample.members)
        }
        // A truncated stream drains the same bytes whatever the buffer (nothing is left held
        // inside zlib), then fails as truncated: cut in the middle of SQL-like data, and inside
        // a long run of zeros (long matches that fill a small buffer many times over).
        let samples = try Self.cached.get()
        let ours = try #require(samples["ours"]), zeros = try #require(samples["gzip"])
        for (sample, cut, least) in [(ours, ours.gz.count / 2, 100_000), (zeros, zeros.gz.count - 100, 50_000)] {
            let input = Array(sample.gz.prefix(cut))
            var drained: [Int: [UInt8]] = [:]
            for outputSize in [1, 3, 1 << 20] {
                let inflater = try GzipInflater(outputSize: outputSize)
                var out: [UInt8] = []
                try inflater.feed(input) { out.append(contentsOf: $0) }
                #expect(throws: GzipInflater.Failure.truncated(afterBytes: UInt64(input.count))) {
                    try inflater.finish { out.append(contentsOf: $0) }
                }
                drained[outputSize] = out
                #expect(out.count > least)
                #expect(Array(sample.plain.prefix(out.count)) == out)
            }
            #expect(drained[1] == drained[1 << 20])
            #expect(drained[3] == drained[1 << 20])
        }
    }

    @Test("a member ending exactly at a slice boundary is counted once and the next one is not restarted early")
    func memberEndsAtSliceBoundary() throws {
        let sample = try #require(try Self.cached.get()["multi"])
        for outputSize in [1 << 20, 17] {
            // Cut at each member end, and also feed an empty slice right after it.
            let inflater = try GzipInflater(outputSize: outputSize)
            var out: [UInt8] = []
            var start = 0
            for (index, end) in sample.memberEnds.enumerated() {
                try inflater.feed(Array(sample.gz[start..<end])) { out.append(contentsOf: $0) }
                #expect(inflater.members == index + 1)
                #expect(!inflater.inMember)
                try inflater.feed([]) { out.append(contentsOf: $0) }
                #expect(inflater.members == index + 1)
                start = end
            }
            try inflater.finish { out.append(contentsOf: $0) }
            #expect(inflater.members == 3)
            #expect(out == sample.plain)
        }
        // Stopping right after the first member is a complete one-member stream.
        let first = Array(sample.gz.prefix(sample.memberEnds[0]))
        let (single, out) = try Self.inflate(first, cuts: [first.count - 1], outputSize: 4096)
        #expect(single.members == 1)
        #expect(out == (try #require(try Self.cached.get()["ours"])).plain)
        // One byte into the second member is a truncated stream, not a finished one.
        #expect(throws: GzipInflater.Failure.self) {
            _ = try Self.inflate(Array(sample.gz.prefix(sample.memberEnds[0] + 1)), cuts: [sample.memberEnds[0]], outputSize: 4096)
        }
    }

    @Test("truncated input fails at every length; an empty input is .empty")
    func truncation() throws {
        let sample = try #require(try Self.cached.get()["multi"])
        let small = Array(sample.gz.suffix(sample.gz.count - sample.memberEnds[1]))  // c.gz: a few dozen bytes
        #expect(throws: GzipInflater.Failure.empty) { _ = try Self.inflate([], cuts: [], outputSize: 64) }
        for length in 1..<small.count {
            #expect(throws: GzipInflater.Failure.self, "cut to \(length)") {
                _ = try Self.inflate(Array(small.prefix(length)), cuts: [length / 2], outputSize: 64)
            }
        }
        for cut in [1, 8, 1000, 100_000] {
            let error = #expect(throws: GzipInflater.Failure.self) {
                _ = try Self.inflate(Array(sample.gz.dropLast(cut)), cuts: Self.slices(of: sample.gz.count, size: 65_536), outputSize: 4096)
            }
            switch error {
            case .truncated?, .corrupt?: break
            default: Issue.record("cut \(cut): \(String(describing: error))")
            }
        }
    }

    @Test("trailing bytes after the last member are an error, naming the members before them")
    func trailingGarbage() throws {
        let sample = try #require(try Self.cached.get()["gzip"])
        let error = #expect(throws: GzipInflater.Failure.self) {
            _ = try Self.inflate(sample.gz + Array("junk".utf8), cuts: [sample.gz.count], outputSize: 4096)
        }
        guard case .corrupt(let offset, let members, _)? = error else {
            Issue.record("not corrupt: \(String(describing: error))")
            return
        }
        #expect(members == 1)
        #expect(offset >= UInt64(sample.gz.count) && offset <= UInt64(sample.gz.count + 4))
        #expect(error?.description.contains("trailing data") == true)
        // One stray byte, or zeros, are not a stream either.
        #expect(throws: GzipInflater.Failure.self) { _ = try Self.inflate(sample.gz + [0x1f], cuts: [], outputSize: 4096) }
        #expect(throws: GzipInflater.Failure.self) { _ = try Self.inflate(sample.gz + [0, 0, 0, 0], cuts: [], outputSize: 4096) }
        // Not gzip at all (a zlib stream, plain text) from the first byte.
        #expect(throws: GzipInflater.Failure.self) { _ = try Self.inflate(Array("CREATE TABLE t();\n".utf8), cuts: [], outputSize: 64) }
    }

    @Test("a sink that throws stops the inflation with its error")
    func sinkErrorsPassThrough() throws {
        struct Stop: Error {}
        let sample = try #require(try Self.cached.get()["ours"])
        let inflater = try GzipInflater(outputSize: 1024)
        var seen = 0
        #expect(throws: Stop.self) {
            try inflater.feed(sample.gz) { piece in
                seen += piece.count
                if seen >= 10_000 { throw Stop() }
            }
        }
        #expect(seen >= 10_000 && seen < 12_000)
    }
}
