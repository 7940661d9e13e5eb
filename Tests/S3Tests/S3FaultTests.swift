import BackstopMetrics
import BackstopTestSupport
import BackupPipeline
import Foundation
@testable import S3
import Testing

/// Faults between Backstop and S3, injected by a `FaultProxy` in front of moto_server.
@Suite("S3 faults between Backstop and S3", .serialized)
struct S3FaultTests {
    static func environment(_ moto: MotoServer, _ proxy: FaultProxy, bucket: String, _ extra: [String: String] = [:]) -> [String: String] {
        var env = moto.backstopEnvironment(bucket: bucket)
        env["BACKUP_S3_ENDPOINT"] = proxy.endpoint
        env["BACKUP_S3_MULTIPART_THRESHOLD"] = "5MiB"
        env["BACKUP_S3_PART_SIZE"] = "5MiB"
        env["BACKUP_S3_CONCURRENCY"] = "1"
        env["BACKUP_S3_RETRY_BACKOFF"] = "20ms"
        env.merge(extra) { _, new in new }
        return env
    }

    static func isPart(_ n: Int) -> @Sendable (String) -> Bool { { $0.hasPrefix("PUT ") && $0.contains("partNumber=\(n)&") } }

    /// In-progress multipart uploads of the bucket (ListMultipartUploads through the AWS CLI).
    static func openUploads(_ moto: MotoServer, bucket: String) throws -> Int {
        let out = try moto.aws(["s3api", "list-multipart-uploads", "--bucket", bucket, "--output", "json"])
        let json = out.isEmpty ? [:] : (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]) ?? [:]
        return (json["Uploads"] as? [Any])?.count ?? 0
    }

    @Test("a connection reset 1 MiB into part 2 of a multipart upload: the part is sent again and the object arrives intact")
    func resetMidPart() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("reset")
        let proxy = try FaultProxy(targetPort: moto.port, rules: [.init(times: 1, .reset(afterBodyBytes: 1 << 20), when: Self.isPart(2))])
        defer { proxy.stop() }
        let dir = try TestEnvironment.makeTempDirectory("s3fault")
        let size = 15 * 1024 * 1024 + 3
        try S3UploadEndToEndTests.writeRandomFile(dir + "/f", size: size, seed: 0xBEEF)
        let client = S3Client(settings: try #require(try S3Settings(environment: Self.environment(moto, proxy, bucket: "reset"))))
        try await client.upload(file: dir + "/f", key: "r/f.gz")
        let part2 = proxy.requests.filter { Self.isPart(2)($0.head) }
        #expect(part2.count == 2 && part2.first?.rule == 0 && part2.last?.rule == nil, "part 2 requests: \(part2.map(\.rule))")
        try moto.download(bucket: "reset", key: "r/f.gz", to: dir + "/back")
        let sent = try FileDigest.sha256(path: dir + "/f").sha256, got = try FileDigest.sha256(path: dir + "/back").sha256
        #expect(sent == got)
        #expect(try Self.openUploads(moto, bucket: "reset") == 0)
        ReliabilityReport.record(
            fault: "the connection reset (RST) 1 MiB into the body of part 2 of a multipart upload",
            did: "part 2 sent again (\(part2.count) attempts), the upload completed",
            lost: "nothing: SHA-256 of the downloaded \(size)-byte object equals the local file's; no upload left open")
    }

    @Test("500 and 503 answers, with and without Retry-After: retried, Retry-After: 2 waited for, then the upload succeeds")
    func serverErrorsAndRetryAfter() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("busy")
        let put: @Sendable (String) -> Bool = { $0.hasPrefix("PUT ") }
        let proxy = try FaultProxy(targetPort: moto.port, rules: [
            .init(times: 1, FaultProxy.error(500, "InternalError"), when: put),
            .init(times: 1, FaultProxy.error(503, "ServiceUnavailable"), when: put),
            .init(times: 1, FaultProxy.error(503, "SlowDown", retryAfter: "2"), when: put),
            .init(times: 1, FaultProxy.error(500, "InternalError", retryAfter: "1"), when: put),
        ])
        defer { proxy.stop() }
        let dir = try TestEnvironment.makeTempDirectory("s3fault")
        try S3UploadEndToEndTests.writeRandomFile(dir + "/f", size: 300_000, seed: 5)
        let client = S3Client(settings: try #require(try S3Settings(environment: Self.environment(moto, proxy, bucket: "busy"))))
        try await client.upload(file: dir + "/f", key: "b/f.gz")
        let seen = proxy.requests
        #expect(seen.map(\.rule) == [0, 1, 2, 3, nil], "\(seen.map(\.rule))")
        let gaps = zip(seen, seen.dropFirst()).map { ($1.at - $0.at).seconds }
        #expect(gaps.count == 4)
        guard gaps.count == 4 else { return }
        #expect(gaps[0] < 0.5 && gaps[1] < 0.5, "without Retry-After the 20 ms backoff: \(gaps)")
        #expect(gaps[2] >= 2 && gaps[2] < 3, "Retry-After: 2 → \(gaps[2]) s")
        #expect(gaps[3] >= 1 && gaps[3] < 2, "Retry-After: 1 → \(gaps[3]) s")
        try moto.download(bucket: "busy", key: "b/f.gz", to: dir + "/back")
        #expect(try S3UploadEndToEndTests.sameContent(dir + "/f", dir + "/back"))
        let f = { (x: Double) in String(format: "%.2f", x) }
        ReliabilityReport.record(
            fault: "S3 answers 500 InternalError, 503 ServiceUnavailable, 503 SlowDown with `Retry-After: 2`, 500 with `Retry-After: 1`",
            did: "retried each: after \(f(gaps[0])) s and \(f(gaps[1])) s without Retry-After (backoff), \(f(gaps[2])) s and \(f(gaps[3])) s with it (honoured, capped at 30 s); the 5th attempt stored the object",
            lost: "nothing: the object byte-identical")
    }

    @Test("Retry-After: seconds and HTTP dates read, capped at 30 s; garbage ignored")
    func retryAfterParsing() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(S3Client.retryAfter("3") == .seconds(3))
        #expect(S3Client.retryAfter("86400") == S3Client.retryAfterCap)
        #expect(S3Client.retryAfter("soon") == nil && S3Client.retryAfter(nil) == nil && S3Client.retryAfter("-4") == nil)
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "GMT")
        format.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        #expect(S3Client.retryAfter(format.string(from: now.addingTimeInterval(5)), now: now) == .seconds(5))
        #expect(S3Client.retryAfter(format.string(from: now.addingTimeInterval(-5)), now: now) == .zero)
    }

    @Test("a server that takes the part and never answers: the upload fails on the stall timeout within its attempts, the backup stays good and the failure is counted")
    func stalledServerTimesOut() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("stall")
        let proxy = try FaultProxy(targetPort: moto.port, rules: [.init(times: 100, .hang, when: { $0.contains("partNumber=") })])
        defer { proxy.stop() }
        let backupDir = try TestEnvironment.makeTempDirectory("s3stall")
        let file = try S3UploadEndToEndTests.legacyRedisBackup(in: backupDir, stamp: "20260101_030000", size: 7 * 1024 * 1024)
        let before = try FileDigest.sha256(path: file).sha256
        let env = Self.environment(moto, proxy, bucket: "stall", ["BACKUP_S3_STALL_TIMEOUT": "1s", "BACKUP_S3_MAX_ATTEMPTS": "2"])
        let registry = MetricsRegistry()
        let start = Date()
        let result = try await S3Uploader(settings: try #require(try S3Settings(environment: env)), backupDir: backupDir, metrics: registry).uploadPending()
        let elapsed = Date().timeIntervalSince(start)
        let error = result.error ?? ""
        #expect(error.contains("UploadPart") && error.lowercased().contains("time"), "\(error)")
        let seen = proxy.requests
        let timeline = seen.map { r in "\(r.head.prefix(40)) +\(seen.first.map { (r.at - $0.at).seconds } ?? 0)" }
        #expect(elapsed < 2 * (1 + 2) + 2, "\(elapsed) s (stall timeout 1 s, 2 attempts): \(timeline)")
        #expect(proxy.requests.filter { $0.rule != nil }.count == 2)
        #expect(try FileDigest.sha256(path: file).sha256 == before)
        let state = try S3UploadEndToEndTests.uploadState(backupDir)
        #expect(state["consecutive_failures"] as? Int == 1)
        #expect(String(decoding: registry.render(), as: UTF8.self).contains(#"backstop_s3_uploads_total{result="failure"} 1"#), "failure not counted")
        let health = try BackstopBinary.run(["health", "--json"], environment: env.merging(["BACKUP_DIR": backupDir]) { _, n in n })
        #expect(health.stdout.contains("S3UploadFailing"), "\(health.stdout)")
        #expect(try Self.openUploads(moto, bucket: "stall") == 0, "the multipart upload was not aborted")
        #expect(try moto.keys(bucket: "stall").isEmpty)
        ReliabilityReport.record(
            fault: "S3 takes a part's body and never answers (BACKUP_S3_STALL_TIMEOUT=1s, 2 attempts)",
            did: "the upload failed with a timeout after \(String(format: "%.1f", elapsed)) s, never hung; the multipart upload aborted; the failure counted (`consecutive_failures` 1, `backstop_s3_uploads_total{result=\"failure\"}`), S3UploadFailing raised, the backup left pending",
            lost: "nothing: the local backup byte-identical, nothing half-listed in the bucket")
    }

    @Test("backup redis SIGTERMed mid-multipart: exits 143, the multipart upload aborted, nothing listed; the next run uploads it whole")
    func sigtermMidMultipart() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("term")
        let proxy = try FaultProxy(targetPort: moto.port, rules: [.init(times: 1, .hang, when: Self.isPart(3))])
        defer { proxy.stop() }
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        let backupDir = try TestEnvironment.makeTempDirectory("s3term")
        let size = 20 * 1024 * 1024 + 9
        let file = try S3UploadEndToEndTests.legacyRedisBackup(in: backupDir, stamp: "20260101_030000", size: size)
        var env = S3UploadEndToEndTests.serveEnvironment(backupDir: backupDir, redis: redis)
        env.merge(Self.environment(moto, proxy, bucket: "term")) { _, n in n }
        let log = backupDir + "/cli.log"
        let pid = try BackstopBinary.spawn(["backup", "redis"], environment: env, logFile: log)
        try await AsyncWait.until(timeout: 60, "part 3 to reach the proxy") { proxy.requests.contains { Self.isPart(3)($0.head) } }
        kill(pid, SIGTERM)
        let signalled = Date()
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        TestProcesses.unregister(pid: pid)
        let stopTime = Date().timeIntervalSince(signalled)
        let exitStatus = (status >> 8) & 0xff
        #expect(exitStatus == 143, "exit \(exitStatus): \(S3UploadEndToEndTests.read(log))")
        #expect(stopTime < 5, "\(stopTime) s to stop")
        #expect(proxy.requests.contains { $0.head.hasPrefix("DELETE ") && $0.head.contains("uploadId=") }, "no AbortMultipartUpload sent")
        #expect(try Self.openUploads(moto, bucket: "term") == 0, "a multipart upload was left open")
        let keys = try moto.keys(bucket: "term")
        #expect(!keys.contains { $0.hasPrefix("redis/redis_20260101_030000") }, "\(keys)")
        #expect(!keys.contains { $0.hasSuffix(".meta") && !keys.contains(String($0.dropLast(5))) }, "a .meta without its data: \(keys)")

        // The next run (no fault left) uploads the interrupted backup whole.
        let next = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
        try moto.download(bucket: "term", key: "redis/redis_20260101_030000.rdb.gz", to: backupDir + "/back")
        #expect(try FileDigest.sha256(path: backupDir + "/back").sha256 == FileDigest.sha256(path: file).sha256)
        #expect(try moto.keys(bucket: "term").contains("redis/redis_20260101_030000.rdb.gz.meta"))
        #expect(try Self.openUploads(moto, bucket: "term") == 0)
        ReliabilityReport.record(
            fault: "`backstop backup redis` sent SIGTERM while part 3 of a 4-part upload is in flight",
            did: "exited 143 \(String(format: "%.1f", stopTime)) s after the signal; AbortMultipartUpload sent (ListMultipartUploads: none), the object and its `.meta` not in the bucket; the next run uploaded it",
            lost: "nothing: the next run's object SHA-256-identical to the local \(size)-byte file")
    }
}
