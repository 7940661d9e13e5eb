import BackstopTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The metrics port of the built `backstop serve` under hostile clients on loopback: bounded
/// in count and time. Each test checks what an operator would notice — serve still up, its
/// memory and descriptors bounded, a normal scrape from another address still fast.
@Suite("metrics port under hostile clients", .serialized)
struct HostileClientTests {
    static let environment = ["METRICS_CONNECTION_TIMEOUT": "3s"]

    /// Malformed and odd requests: (name, bytes, what a correct server must not do).
    static func fuzzCases() -> [(String, [UInt8])] {
        var cases: [(String, [UInt8])] = [
            ("empty line", Array("\r\n\r\n".utf8)),
            ("no version", Array("GET /metrics\r\n\r\n".utf8)),
            ("version 9.9", Array("GET /metrics HTTP/9.9\r\nHost: a\r\n\r\n".utf8)),
            ("no Host on 1.1", Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)),
            ("lower-case method", Array("get /metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("invalid method", Array("FOO /metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("CONNECT", Array("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("TRACE", Array("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("path traversal", Array("GET /../../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("percent NUL", Array("GET /metrics%00.txt HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("asterisk", Array("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("absolute URI", Array("GET http://evil/metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("NUL in request line", Array("GET /met\u{0}rics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
            ("header without colon", Array("GET /metrics HTTP/1.1\r\nHost a\r\n\r\n".utf8)),
            ("folded header", Array("GET /metrics HTTP/1.1\r\nHost: a\r\n b\r\n\r\n".utf8)),
            ("huge path", Array(("GET /" + String(repeating: "a", count: 200_000) + " HTTP/1.1\r\nHost: a\r\n\r\n").utf8)),
            ("huge header", Array(("GET /metrics HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 200_000) + "\r\n\r\n").utf8)),
            ("10,000 headers", Array(("GET /metrics HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X-A: b\r\n", count: 10_000) + "\r\n").utf8)),
            ("body claims 1 TB", Array("POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 1099511627776\r\n\r\nabc".utf8)),
            ("negative length", Array("POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n".utf8)),
            ("bad chunked", Array("POST /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8)),
            ("bad basic auth", Array("GET /metrics HTTP/1.1\r\nHost: a\r\nAuthorization: Basic %%%%\r\n\r\n".utf8)),
            ("TLS hello on plain port", [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03] + Array(repeating: 0, count: 64)),
            ("HTTP/1.0", Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)),
            ("HTTP/0.9", Array("GET /metrics\n".utf8)),
        ]
        var random = SeededGenerator(seed: 16)
        for i in 0..<60 { cases.append(("garbage \(i)", random.bytes(Int(random.next() % 4096) + 1))) }
        for i in 0..<40 {
            // Garbage after a valid start, and valid requests cut at a random byte.
            let valid = Array("GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n".utf8)
            let cut = Int(random.next() % UInt64(valid.count))
            cases.append(("cut \(i)", Array(valid[0..<cut]) + (i % 2 == 0 ? random.bytes(32) : [])))
        }
        return cases
    }

    @Test func fuzzedRequestsNeverTakeTheServerDown() throws {
        let serve = try ServeUnderTest(environment: Self.environment)
        defer { serve.stop() }
        _ = timedScrape(port: serve.port)
        let rssBefore = serve.residentKiB
        var answers: [String: Int] = [:]
        for (name, bytes) in Self.fuzzCases() {
            guard let connection = RawConnection(port: serve.port, receiveTimeout: 1) else {
                Issue.record("connection refused before case \(name)")
                continue
            }
            _ = connection.send(bytes)
            shutdown(connection.fd, Int32(SHUT_WR))
            let reply = String(decoding: connection.readAll(limit: 1 << 20), as: UTF8.self)
            connection.close()
            answers[name] = statusCode(reply)
            #expect(serve.isRunning, "serve died on case \(name)")
            if !serve.isRunning { break }
        }
        // What the answers must be where HTTP says what they are.
        #expect(answers["invalid method"] == 405)
        #expect(answers["CONNECT"] != 200 && answers["TRACE"] == 405)
        #expect(answers["path traversal"] == 404)
        #expect(answers["huge header"] != 200 && answers["huge path"] != 200 && answers["10,000 headers"] != 200)
        #expect(answers["HTTP/1.0"] == 200)
        #expect(answers["percent NUL"] == 404, "/metrics%00.txt is not /metrics")
        #expect(answers["no Host on 1.1"] != 200)
        for (name, status) in answers where name.hasPrefix("garbage") { #expect(status != 200, "\(name) got 200") }

        // Pipelining: 20 requests in one write get 20 answers, in order.
        let pipelined = try #require(RawConnection(port: serve.port, receiveTimeout: 2))
        let one = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
        _ = pipelined.send(String(repeating: one, count: 19) + "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let replies = String(decoding: pipelined.readAll(), as: UTF8.self)
        pipelined.close()
        #expect(replies.components(separatedBy: "HTTP/1.1 200").count - 1 == 20)

        let scrape = timedScrape(port: serve.port)
        #expect(scrape.status == 200 && scrape.body.contains("backstop_build_info"))
        let rssAfter = serve.residentKiB
        var histogram: [Int: Int] = [:]
        for status in answers.values { histogram[status, default: 0] += 1 }
        print("fuzz answers (0 = closed without an answer): " + histogram.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        print("fuzz cases answered 200: \(answers.filter { $0.value == 200 }.keys.sorted())")
        print("fuzz: \(answers.count) cases; serve RSS \(rssBefore) -> \(rssAfter) KiB, fds \(serve.openDescriptors)")
        #expect(rssAfter - rssBefore < 32 * 1024, "RSS grew from \(rssBefore) to \(rssAfter) KiB")
        let tally = histogram.sorted { $0.key < $1.key }.filter { $0.key != 0 }.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
        let ok = answers.filter { $0.value == 200 }.keys.sorted().joined(separator: ", ")
        ReliabilityReport.record(
            fault: "\(answers.count) malformed requests (bad request lines, invalid methods and paths, 200 KB paths and headers, 10,000 headers, bodies claiming 1 TB, TLS on the plain port, random bytes, cut requests, HTTP/1.0 and /0.9)",
            did: "\(tally), \(histogram[0] ?? 0) closed without an answer; 200 only for: \(ok); `/metrics%00.txt` is 404; never a crash; 20 pipelined requests got 20 answers",
            lost: "nothing; RSS \(String(format: "%.1f", Double(rssBefore) / 1024)) → \(String(format: "%.1f", Double(rssAfter) / 1024)) MB, \(serve.openDescriptors) fds")
    }

    @Test func slowlorisAndAThousandConnectionsLeaveScrapesFastAndResourcesBounded() throws {
        let serve = try ServeUnderTest(environment: Self.environment)
        defer { serve.stop() }
        for _ in 0..<3 { _ = timedScrape(port: serve.port) }
        let rssBefore = serve.residentKiB
        let fdsBefore = serve.openDescriptors

        // 1,000 connections from one address: half send a request head and stall (slowloris),
        // half send a whole request and never read the answer.
        var attackers: [RawConnection] = []
        defer { attackers.forEach { $0.close() } }
        for i in 0..<1000 {
            guard let c = RawConnection(port: serve.port, source: "127.0.0.1", receiveTimeout: 0.2) else { continue }
            if i % 2 == 0 {
                _ = c.send("GET /metrics HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            } else {
                _ = c.send("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            }
            attackers.append(c)
        }
        var during: [Double] = []
        for _ in 0..<10 {
            let scrape = timedScrape(port: serve.port)
            #expect(scrape.status == 200, "scrape during the attack: \(scrape.body.prefix(200))")
            during.append(scrape.seconds)
        }
        let fdsDuring = serve.openDescriptors
        let rssDuring = serve.residentKiB
        #expect(serve.isRunning)
        print("attack: scrapes \(during.map { String(format: "%.1f ms", $0 * 1000) }.joined(separator: ", ")); fds \(fdsBefore) -> \(fdsDuring); RSS \(rssBefore) -> \(rssDuring) KiB")
        #expect(during.allSatisfy { $0 < 0.1 }, "a scrape took over 100 ms: \(during)")
        // At most 16 connections from the attacking address are held (METRICS_MAX_CONNECTIONS_PER_IP).
        #expect(fdsDuring - fdsBefore <= 16 + 4, "fds \(fdsBefore) -> \(fdsDuring)")
        #expect(rssDuring - rssBefore < 32 * 1024, "RSS \(rssBefore) -> \(rssDuring) KiB")

        // The stalled connections are closed by the server after the idle timeout (3 s here).
        usleep(5_000_000)
        let stalledHeld = attackers.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        #expect(stalledHeld.allSatisfy { $0.closedByPeer() }, "a stalled connection was still open after the timeout")
        let fdsAfter = serve.openDescriptors
        #expect(fdsAfter <= fdsBefore + 2, "fds after the timeout \(fdsAfter), before \(fdsBefore)")
        #expect(timedScrape(port: serve.port, source: "127.0.0.1").status == 200, "the attacking address is served again once its connections are gone")
        let ms = during.map { $0 * 1000 }
        ReliabilityReport.record(
            fault: "1,000 connections from one address, half of them slowloris (a header never finished)",
            did: "\(fdsDuring - fdsBefore) descriptors held (per-address limit 16), the rest refused at accept; the stalled ones closed after `METRICS_CONNECTION_TIMEOUT`; scrapes from another address answered in \(String(format: "%.1f–%.1f", ms.min() ?? 0, ms.max() ?? 0)) ms",
            lost: "nothing; fds \(fdsBefore) → \(fdsDuring) during, \(fdsAfter) after; RSS \(rssDuring - rssBefore >= 0 ? "+" : "")\(String(format: "%.1f", Double(rssDuring - rssBefore) / 1024)) MB")
    }

    @Test func stalledTLSHandshakesLeaveTLSScrapesFast() throws {
        let access = try TestWebAccess()
        var env = Self.environment
        env["WEB_CONFIG_FILE"] = access.configFile
        let serve = try ServeUnderTest(environment: env)
        defer { serve.stop() }
        let url = "https://127.0.0.1:\(serve.port)/metrics"
        let curl = try TestEnvironment.binary("curl", package: "curl")
        /// One curl, `count` scrapes: the first on a new TLS connection, the others kept alive
        /// on it (as Prometheus scrapes). (status, seconds) of each.
        func scrapes(_ count: Int) throws -> [(status: String, seconds: Double)] {
            let result = try TestProcesses.run(curl, [
                "-s", "--max-time", "10", "--interface", "127.0.0.2", "--cacert", access.caFile,
                "-u", "\(access.user):\(access.password)", "-w", "%{http_code} %{time_total}\\n",
            ] + (0..<count).flatMap { _ in ["-o", "/dev/null", url] }, check: false)
            return result.stdout.split(separator: "\n").map { line in
                let parts = line.split(separator: " ")
                return (String(parts.first ?? ""), Double(parts.last ?? "") ?? 99)
            }
        }
        let before = try scrapes(6) // the first pays the bcrypt run
        #expect(before.count == 6 && before.allSatisfy { $0.status == "200" })
        let fdsBefore = serve.openDescriptors
        // 300 connections that never start TLS, 100 that send half a ClientHello.
        var attackers: [RawConnection] = []
        defer { attackers.forEach { $0.close() } }
        for i in 0..<400 {
            guard let c = RawConnection(port: serve.port, receiveTimeout: 0.2) else { continue }
            if i >= 300 { _ = c.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]) }
            attackers.append(c)
        }
        let during = try scrapes(6)
        let fdsDuring = serve.openDescriptors
        #expect(during.count == 6 && during.allSatisfy { $0.status == "200" }, "\(during)")
        func ms(_ list: [(status: String, seconds: Double)]) -> String {
            list.map { String(format: "%.1f", $0.seconds * 1000) }.joined(separator: ", ")
        }
        // curl's time_total of a reused connection counts from the start of that transfer.
        print("TLS: before the attack \(ms(before)) ms, during \(ms(during)) ms (first: new handshake, then kept alive); fds \(fdsBefore) -> \(fdsDuring)")
        #expect(during.dropFirst().allSatisfy { $0.seconds < 0.1 }, "a kept-alive TLS scrape took over 100 ms: \(ms(during))")
        #expect(fdsDuring - fdsBefore <= 16 + 4)
        #expect(serve.isRunning)
        let kept = during.dropFirst().map { $0.seconds * 1000 }
        ReliabilityReport.record(
            fault: "400 connections that never finish a TLS handshake (TLS on)",
            did: "TLS scrapes with basic auth from another address, kept alive as Prometheus keeps them, answered in \(String(format: "%.1f–%.1f", kept.min() ?? 0, kept.max() ?? 0)) ms; one on a new TLS connection \(String(format: "%.0f", (during.first?.seconds ?? 0) * 1000)) ms",
            lost: "nothing; fds \(fdsBefore) → \(fdsDuring)")
    }
}
