import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import Foundation
@testable import S3
import Testing

/// The upload path of S3 end to end, against moto_server on loopback, checked with the AWS
/// CLI: the backup commands and `backstop serve` run as built, as an operator runs them.
@Suite("S3 uploads end to end", .serialized)
struct S3UploadEndToEndTests {
    // MARK: - Helpers

    /// Fails the test if the moto secret key (or its first half) shows up in `text`.
    static func expectNoSecret(_ text: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let secret = MotoServer.secretKey
        #expect(!text.contains(secret) && !text.contains(String(secret.prefix(20))), "the secret key appears in \(what)",
                sourceLocation: sourceLocation)
    }

    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    static func uploadState(_ backupDir: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: backupDir + "/.state/s3_uploads.json"))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// `size` pseudo-random bytes (incompressible, like a gzip file), written 1 MiB at a time.
    static func writeRandomFile(_ path: String, size: Int, seed: UInt64) throws {
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else { throw TestSupportError("cannot create \(path)") }
        defer { try? handle.close() }
        var state = seed | 1
        var left = size
        while left > 0 {
            let n = min(left, 1 << 20)
            var chunk = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                chunk[i] = UInt8(truncatingIfNeeded: state)
            }
            try handle.write(contentsOf: chunk)
            left -= n
        }
    }

    /// A Redis backup as the old scripts left it (data + completed `.meta`, no checksum): a good
    /// backup for the catalog, so the uploader picks it up.
    static func legacyRedisBackup(in backupDir: String, stamp: String, size: Int) throws -> String {
        let folder = backupDir + "/redis"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/redis_\(stamp).rdb.gz"
        try writeRandomFile(path, size: size, seed: 0x5EED)
        let meta = #"{"timestamp":"\#(stamp)","type":"redis","file":"redis_\#(stamp).rdb.gz","size":"\#(size)","status":"completed"}"#
        try meta.write(toFile: path + ".meta", atomically: true, encoding: .utf8)
        return path
    }

    static func sameContent(_ a: String, _ b: String) throws -> Bool {
        try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b))
    }

    /// A running `backstop serve`, stopped with SIGTERM.
    final class Serve {
        let pid: Int32
        let port: Int
        let log: String
        var metricsURL: String { "http://127.0.0.1:\(port)/metrics" }

        init(environment: [String: String], directory: String) throws {
            port = try TestEnvironment.freePort()
            log = directory + "/serve.log"
            var env = environment
            env["METRICS_LISTEN"] = "127.0.0.1:\(port)"
            pid = try BackstopBinary.spawn(["serve"], environment: env, logFile: log)
            let port = self.port, log = self.log
            try TestEnvironment.waitUntil(timeout: 20, "backstop serve to listen on \(port) (log \(log))") {
                TestEnvironment.isListening(port: port)
            }
        }

        func metrics() throws -> String { try TestHTTP.request(metricsURL).body }

        func stop() {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            TestProcesses.unregister(pid: pid)
        }
    }

    /// serve's environment with no probes that matter and no scheduled job unless asked.
    static func serveEnvironment(backupDir: String, redis: StandaloneRedis?) -> [String: String] {
        [
            "BACKUP_DIR": backupDir,
            "HEALTH_CHECK_INTERVAL": "1s",
            "HEALTH_PROBE_TIMEOUT": "1s",
            "PGHOST": "127.0.0.1", "PGPORT": "1",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": redis.map { String($0.port) } ?? "1",
            "BACKUP_SCHEDULE_FULL": "", "BACKUP_SCHEDULE_INCREMENTAL": "", "BACKUP_SCHEDULE_REDIS": "",
            "BACKUP_SCHEDULE_CLEANUP": "", "BACKUP_SCHEDULE_DRILL": "",
        ]
    }

    /// Quick retries, so an unreachable endpoint fails in well under a second.
    static let fastRetries = ["BACKUP_S3_MAX_ATTEMPTS": "2", "BACKUP_S3_RETRY_BACKOFF": "50ms", "BACKUP_S3_CONNECT_TIMEOUT": "2s"]

    // MARK: - Multipart, SlowDown

    @Test("a 25 MiB backup goes as a 6-part multipart upload through three 503 SlowDowns and arrives intact")
    func largeBackupMultipartThroughSlowDowns() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("big")
        let proxy = try FaultProxy(targetPort: moto.port, slowDowns: 3)
        defer { proxy.stop() }
        let backupDir = try TestEnvironment.makeTempDirectory("s3big")
        let size = 25 * 1024 * 1024 + 12345
        let file = try Self.legacyRedisBackup(in: backupDir, stamp: "20260101_030000", size: size)

        var env = moto.backstopEnvironment(bucket: "big", prefix: "site")
        env["BACKUP_S3_ENDPOINT"] = proxy.endpoint
        env["BACKUP_S3_MULTIPART_THRESHOLD"] = "5MiB"
        env["BACKUP_S3_PART_SIZE"] = "5MiB"
        env["BACKUP_S3_CONCURRENCY"] = "3"
        env["BACKUP_S3_RETRY_BACKOFF"] = "20ms"
        let settings = try #require(try S3Settings(environment: env))
        let registry = MetricsRegistry()
        let result = try await S3Uploader(settings: settings, backupDir: backupDir, metrics: registry).uploadPending()

        #expect(result.error == nil, "\(result.error ?? "")")
        #expect(result.uploaded == ["redis/redis_20260101_030000.rdb.gz"])
        #expect(proxy.slowDownsSent == 3, "the proxy answered \(proxy.slowDownsSent) requests with SlowDown")
        #expect(try moto.keys(bucket: "big") == ["site/redis/redis_20260101_030000.rdb.gz", "site/redis/redis_20260101_030000.rdb.gz.meta"])
        let head = try moto.headObject(bucket: "big", key: "site/redis/redis_20260101_030000.rdb.gz")
        let etag = (head["ETag"] as? String ?? "").replacingOccurrences(of: "\"", with: "")
        #expect(etag.hasSuffix("-6"), "ETag \(etag) is not the ETag of a 6-part multipart upload")
        #expect((head["ContentLength"] as? Int) == size)
        #expect(head["StorageClass"] as? String == "STANDARD_IA")
        let back = backupDir + "/downloaded"
        try moto.download(bucket: "big", key: "site/redis/redis_20260101_030000.rdb.gz", to: back)
        #expect(try Self.sameContent(back, file), "the downloaded object differs from the local file")
        // Per-part integrity: every part went with the Content-MD5 of its own byte range.
        let partHeads = proxy.forwardedRequestHeads.filter { $0.hasPrefix("PUT ") && $0.contains("partNumber=") }
        #expect(Set(partHeads.compactMap { $0.firstMatch(of: /partNumber=(\d+)/).map { Int($0.1)! } }) == Set(1...6), "\(partHeads)")
        for head in partHeads {
            guard let number = head.firstMatch(of: /partNumber=(\d+)/).map({ Int($0.1)! }) else { continue }
            let offset = UInt64(number - 1) * (5 << 20)
            let expected = try S3Client.md5Base64(path: file, offset: offset, length: min(5 << 20, UInt64(size) - offset))
            let sent = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-md5:") }
                .map { $0.dropFirst("content-md5:".count).trimmingCharacters(in: .whitespaces) }
            #expect(sent == expected, "part \(number): Content-MD5 \(sent ?? "missing"), expected \(expected)")
        }
        // No incomplete multipart upload left behind.
        let uploads = try moto.aws(["s3api", "list-multipart-uploads", "--bucket", "big", "--output", "json"])
        #expect(!uploads.contains("UploadId"), "\(uploads)")

        #expect(registry.value(Family.s3Uploads, ["result": "success"]) == 1)
        #expect(registry.value(Family.s3Uploads, ["result": "failure"]) == 0)
        #expect(registry.value(Family.s3UploadConsecutiveFailures) == 0)
        #expect((registry.value(Family.s3UploadLastSuccess) ?? 0) > 0)
        let state = try Self.uploadState(backupDir)
        #expect((state["uploaded"] as? [String: Any])?.keys.sorted() == ["redis/redis_20260101_030000.rdb.gz"])
        #expect(state["consecutive_failures"] as? Int == 0)

        // Nothing left: a second run uploads nothing and touches nothing.
        let again = try await S3Uploader(settings: settings, backupDir: backupDir, metrics: registry).uploadPending()
        #expect(again.uploaded.isEmpty && again.failed.isEmpty)
    }

    /// This process's resident memory, from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    /// Samples the resident memory every 10 ms until stopped; `peak` is guarded by `lock`.
    final class MemorySampler: @unchecked Sendable {
        private let lock = NSLock()
        private var peakValue = 0
        private var running = true
        init() {
            Thread.detachNewThread { [self] in
                while lock.withLock({ running }) {
                    let now = S3UploadEndToEndTests.residentBytes()
                    lock.withLock { peakValue = max(peakValue, now) }
                    usleep(10_000)
                }
            }
        }
        func stop() -> Int { lock.withLock { running = false; return peakValue } }
    }

    @Test("memory stays bounded: an 80 MiB file goes up in 8 MiB parts, 4 in flight, without the process growing by its size")
    func memoryStaysBounded() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("mem")
        let backupDir = try TestEnvironment.makeTempDirectory("s3mem")
        try FileManager.default.createDirectory(atPath: backupDir + "/redis", withIntermediateDirectories: true)
        let path = backupDir + "/redis/redis_20260102_000000.rdb.gz"
        let size = 80 << 20
        // Sparse: the bytes don't matter here, only that the process never holds them all.
        let fd = open(path, O_CREAT | O_WRONLY, 0o644)
        #expect(fd >= 0 && ftruncate(fd, off_t(size)) == 0)
        close(fd)
        try #"{"timestamp":"20260102_000000","type":"redis","status":"completed"}"#.write(toFile: path + ".meta", atomically: true, encoding: .utf8)
        var env = moto.backstopEnvironment(bucket: "mem")
        env["BACKUP_S3_MULTIPART_THRESHOLD"] = "8MiB"
        env["BACKUP_S3_PART_SIZE"] = "8MiB"
        env["BACKUP_S3_CONCURRENCY"] = "4"
        let settings = try #require(try S3Settings(environment: env))
        let before = Self.residentBytes()
        let sampler = MemorySampler()
        let result = try await S3Uploader(settings: settings, backupDir: backupDir).uploadPending()
        let peak = sampler.stop()
        #expect(result.error == nil, "\(result.error ?? "")")
        let head = try moto.headObject(bucket: "mem", key: "redis/redis_20260102_000000.rdb.gz")
        #expect((head["ContentLength"] as? Int) == size)
        #expect((head["ETag"] as? String ?? "").hasSuffix("-10\""), "\(head)")
        let growth = peak - before
        print("S3 upload of \(size >> 20) MiB: resident memory grew by \(growth >> 10) KiB at the peak")
        // Four 8 MiB parts in flight would be 32 MiB if they were held in memory; streamed, the
        // growth is curl's buffers and the 1 MiB MD5 buffers.
        #expect(growth < 24 << 20, "resident memory grew by \(growth >> 20) MiB while uploading \(size >> 20) MiB")
    }

    // MARK: - The CLI

    @Test("backup redis: a closed endpoint leaves a good backup and exit 0, counts the failure and raises S3UploadFailing; the next run uploads both")
    func redisCommandUnreachableThenUploads() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("cli")
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        _ = try redis.cli(["SET", "greeting", "hello"])
        let dir = try TestEnvironment.makeTempDirectory("s3cli")
        let backupDir = dir + "/backups"
        let closed = try TestEnvironment.freePort()

        var base = Self.serveEnvironment(backupDir: backupDir, redis: redis)
        base.merge(moto.backstopEnvironment(bucket: "cli", prefix: "prod/east")) { _, new in new }
        base.merge(Self.fastRetries) { _, new in new }
        base["BACKUP_S3_SSE"] = "AES256"
        var down = base
        down["BACKUP_S3_ENDPOINT"] = "http://127.0.0.1:\(closed)"

        // 1. The endpoint is unreachable: the backup is still made, kept and good.
        let first = try BackstopBinary.run(["backup", "redis"], environment: down)
        #expect(first.status == 0, "backup redis with S3 down: \(first.stdout)\(first.stderr)")
        Self.expectNoSecret(first.stdout + first.stderr, "the output of backup redis")
        let backupLog = Self.read(backupDir + "/logs/backup.log")
        #expect(backupLog.contains("s3: upload of redis/redis_") && backupLog.contains("failed"), "\(backupLog)")
        #expect(backupLog.contains("stay pending"), "\(backupLog)")
        var state = try Self.uploadState(backupDir)
        #expect(state["consecutive_failures"] as? Int == 1)
        #expect((state["uploaded"] as? [String: Any] ?? [:]).isEmpty)
        #expect(!(state["last_error"] as? String ?? "").isEmpty)
        let verify = try BackstopBinary.run(["verify", "--all"], environment: down)
        #expect(verify.status == 0, "verify after a failed upload: \(verify.stdout)\(verify.stderr)")
        let health = try BackstopBinary.run(["health", "--json"], environment: down)
        #expect(health.stdout.contains("S3UploadFailing"), "\(health.stdout)")
        Self.expectNoSecret(health.stdout + health.stderr, "backstop health")

        // 2. The endpoint is back: the next run uploads the pending backup and its own.
        try await Task.sleep(for: .milliseconds(1100))
        let second = try BackstopBinary.run(["backup", "redis"], environment: base)
        #expect(second.status == 0, "backup redis with S3 up: \(second.stdout)\(second.stderr)")
        let keys = try moto.keys(bucket: "cli")
        #expect(keys.count == 4, "\(keys)")
        #expect(keys.allSatisfy { $0.hasPrefix("prod/east/redis/redis_") }, "\(keys)")
        #expect(keys.filter { $0.hasSuffix(".rdb.gz.meta") }.count == 2, "\(keys)")
        let local = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/redis").filter { $0.hasSuffix(".rdb.gz") }.sorted()
        #expect(local.count == 2)
        for name in local {
            let key = "prod/east/redis/" + name
            let head = try moto.headObject(bucket: "cli", key: key)
            #expect(head["StorageClass"] as? String == "STANDARD_IA", "\(key): \(head)")
            #expect(head["ServerSideEncryption"] as? String == "AES256", "\(key): \(head)")
            try moto.download(bucket: "cli", key: key, to: dir + "/" + name)
            #expect(try Self.sameContent(dir + "/" + name, backupDir + "/redis/" + name), "\(key) differs from the local file")
        }
        state = try Self.uploadState(backupDir)
        #expect(state["consecutive_failures"] as? Int == 0)
        #expect((state["uploaded"] as? [String: Any] ?? [:]).count == 2)
        let healthAfter = try BackstopBinary.run(["health", "--json"], environment: base)
        #expect(!healthAfter.stdout.contains("S3UploadFailing"), "\(healthAfter.stdout)")

        Self.expectNoSecret(Self.read(backupDir + "/logs/backup.log"), "backup.log")
        Self.expectNoSecret(Self.read(backupDir + "/.state/s3_uploads.json"), "s3_uploads.json")
        Self.expectNoSecret(second.stdout + second.stderr, "the output of backup redis")
    }

    @Test("backup postgres full and incremental land under postgres/ with the storage class and SSE-KMS key asked for")
    func postgresCommandsUploadWithKMS() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("pgbackups")
        let created = try moto.aws(["kms", "create-key", "--output", "json"])
        let keyMeta = (try JSONSerialization.jsonObject(with: Data(created.utf8)) as? [String: Any])?["KeyMetadata"] as? [String: Any]
        let keyID = try #require(keyMeta?["KeyId"] as? String)

        let server = try PostgresServer.shared
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName("s3up"))
        try server.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g", database: db)
        let backupDir = try TestEnvironment.makeTempDirectory("s3pg")
        var env = server.environment(database: db)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        env.merge(moto.backstopEnvironment(bucket: "pgbackups")) { _, new in new }
        env["BACKUP_S3_STORAGE_CLASS"] = "STANDARD"
        env["BACKUP_S3_SSE"] = "aws:kms"
        env["BACKUP_S3_SSE_KMS_KEY_ID"] = keyID

        let full = try BackstopBinary.run(["backup", "postgres", "full"], environment: env)
        #expect(full.status == 0, "\(full.stdout)\(full.stderr)")
        let incremental = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env)
        #expect(incremental.status == 0, "\(incremental.stdout)\(incremental.stderr)")

        let keys = try moto.keys(bucket: "pgbackups")
        let names = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/postgres")
        let dump = try #require(names.first { $0.hasPrefix("\(db)_full_") && $0.hasSuffix(".sql.gz") })
        let globals = try #require(names.first { $0.hasPrefix("globals_") && $0.hasSuffix(".sql.gz") })
        let base = try #require(names.first { $0.hasPrefix("wal_") && !$0.contains(".") })
        let baseFiles = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/postgres/" + base).filter { !$0.hasPrefix(".") }.sorted()
        #expect(baseFiles.contains("base.tar.gz") && baseFiles.contains("backup_manifest"), "\(baseFiles)")
        var expected = ["postgres/\(dump)", "postgres/\(dump).meta", "postgres/\(globals)", "postgres/\(globals).meta", "postgres/\(base).meta"]
        expected += baseFiles.map { "postgres/\(base)/\($0)" }
        #expect(keys == expected.sorted(), "keys in the bucket: \(keys)")

        for key in [expected[0], "postgres/\(base)/base.tar.gz"] {
            let head = try moto.headObject(bucket: "pgbackups", key: key)
            #expect(head["ServerSideEncryption"] as? String == "aws:kms", "\(key): \(head)")
            #expect((head["SSEKMSKeyId"] as? String ?? "").contains(keyID), "\(key): \(head)")
            // S3 leaves StorageClass out of HEAD for STANDARD.
            #expect((head["StorageClass"] as? String ?? "STANDARD") == "STANDARD", "\(key): \(head)")
        }
        try moto.download(bucket: "pgbackups", key: "postgres/\(base)/base.tar.gz", to: backupDir + "/base.back")
        #expect(try Self.sameContent(backupDir + "/base.back", backupDir + "/postgres/\(base)/base.tar.gz"))
        let log = Self.read(backupDir + "/logs/backup.log")
        #expect(log.contains("s3: uploaded 2 backups to s3://pgbackups after backup postgres full"), "\(log)")
        #expect(log.contains("s3: uploaded 1 backup to s3://pgbackups after backup postgres incremental"), "\(log)")
        Self.expectNoSecret(log + full.stdout + full.stderr + incremental.stdout + incremental.stderr, "the backup output")
    }

    // MARK: - serve

    @Test("serve: an unreachable endpoint fires S3UploadFailing (metrics, alerts.json); once it is back the next job uploads and the alert resolves")
    func serveFiresAndResolves() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("serve")
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        let dir = try TestEnvironment.makeTempDirectory("s3serve")
        let backupDir = dir + "/backups"
        let endpointPort = try TestEnvironment.freePort()  // nothing listens here yet

        var env = Self.serveEnvironment(backupDir: backupDir, redis: redis)
        env.merge(moto.backstopEnvironment(bucket: "serve", prefix: "nightly")) { _, new in new }
        env.merge(Self.fastRetries) { _, new in new }
        env["BACKUP_S3_ENDPOINT"] = "http://127.0.0.1:\(endpointPort)"
        // No Redis backup yet: catch-up runs the job at start, then every minute.
        env["BACKUP_SCHEDULE_REDIS"] = "* * * * *"
        let serve = try Serve(environment: env, directory: dir)
        defer { serve.stop() }

        // The job succeeds, the upload fails, the alert fires.
        let failing = try TestHTTP.waitFor(serve.metricsURL, timeout: 60, "a failed upload and S3UploadFailing") {
            (metricValue($0, "backstop_s3_uploads_total", #"result="failure""#) ?? 0) >= 1
                && metricValue($0, "backstop_s3_upload_consecutive_failures").map { $0 >= 1 } == true
                && metricValue($0, "backstop_alerts_firing", #"alertname="S3UploadFailing",severity="warning""#) == 1
        }
        #expect(metricValue(failing, "backstop_s3_uploads_total", #"result="success""#) == 0)
        #expect(metricValue(failing, "backstop_s3_upload_last_success_timestamp_seconds") == 0)
        let lastRun = failing.split(separator: "\n").filter { $0.hasPrefix(#"backstop_backup_last_run_success{kind="redis""#) }
        #expect(!lastRun.isEmpty && lastRun.allSatisfy { $0.hasSuffix(" 1") }, "the Redis backup job did not succeed: \(lastRun)")
        let alertsFile = Self.read(backupDir + "/alerts.json")
        #expect(alertsFile.contains("S3UploadFailing"), "\(alertsFile)")
        Self.expectNoSecret(alertsFile, "alerts.json")
        Self.expectNoSecret(failing, "/metrics")
        let promtool = try TestEnvironment.binary("promtool", package: "prometheus")
        let lint = try TestProcesses.run(promtool, ["check", "metrics"], stdin: Data(failing.utf8), check: false)
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool check metrics: \(lint.stdout)\(lint.stderr)")
        let verify = try BackstopBinary.run(["verify", "--all"], environment: ["BACKUP_DIR": backupDir])
        #expect(verify.status == 0, "verify while uploads fail: \(verify.stdout)\(verify.stderr)")
        #expect(try moto.keys(bucket: "serve").isEmpty)

        // The endpoint comes back (a proxy to moto on the same address); the next minute's job
        // uploads every pending backup and the alert resolves.
        let proxy = try FaultProxy(targetPort: moto.port, slowDowns: 0, port: endpointPort)
        defer { proxy.stop() }
        let recovered = try TestHTTP.waitFor(serve.metricsURL, timeout: 100, "an upload after the endpoint came back") {
            (metricValue($0, "backstop_s3_uploads_total", #"result="success""#) ?? 0) >= 1
                && metricValue($0, "backstop_s3_upload_consecutive_failures") == 0
                && metricValue($0, "backstop_alerts_firing", #"alertname="S3UploadFailing",severity="warning""#) == 0
        }
        #expect((metricValue(recovered, "backstop_s3_upload_last_success_timestamp_seconds") ?? 0) > 0)
        #expect(!Self.read(backupDir + "/alerts.json").contains("S3UploadFailing"))
        let keys = try moto.keys(bucket: "serve")
        let local = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/redis").filter { $0.hasSuffix(".rdb.gz") }
        #expect(local.count >= 2)
        for name in local {
            #expect(keys.contains("nightly/redis/" + name) && keys.contains("nightly/redis/" + name + ".meta"), "\(name) not in \(keys)")
        }
        Self.expectNoSecret(recovered, "/metrics")
        // After the upload the bucket was listed: the location="s3" series count what is there.
        let listed = try TestHTTP.waitFor(serve.metricsURL, timeout: 30, "location=s3 series after the upload") {
            (metricValue($0, "backstop_backups_retained", #"kind="redis",location="s3""#) ?? 0) >= 1
        }
        #expect((metricValue(listed, "backstop_backup_storage_bytes", #"kind="redis",location="s3""#) ?? 0) > 0)
        serve.stop()
        Self.expectNoSecret(Self.read(serve.log), "the serve log")
        Self.expectNoSecret(Self.read(backupDir + "/logs/backup.log"), "backup.log")
        Self.expectNoSecret(Self.read(backupDir + "/logs/health.log"), "health.log")
        Self.expectNoSecret(Self.read(backupDir + "/.state/s3_uploads.json"), "s3_uploads.json")
    }

    @Test("serve: a bad BACKUP_S3_SSE stops start-up naming it; without S3 no S3 family is exported")
    func serveValidatesAndOmitsFamilies() async throws {
        let dir = try TestEnvironment.makeTempDirectory("s3cfg")
        var env = Self.serveEnvironment(backupDir: dir + "/backups", redis: nil)
        env["METRICS_LISTEN"] = "127.0.0.1:\(try TestEnvironment.freePort())"
        env["BACKUP_S3_BUCKET"] = "b"
        env["AWS_ACCESS_KEY_ID"] = MotoServer.accessKey
        env["AWS_SECRET_ACCESS_KEY"] = MotoServer.secretKey
        env["BACKUP_S3_SSE"] = "aes-256"
        let bad = try BackstopBinary.run(["serve"], environment: env)
        #expect(bad.status == 64, "serve with BACKUP_S3_SSE=aes-256: \(bad.status) \(bad.stderr)")
        #expect(bad.stderr.contains("BACKUP_S3_SSE") && bad.stderr.contains("aes-256") && bad.stderr.contains("AES256")
                && bad.stderr.contains("aws:kms"), "\(bad.stderr)")
        Self.expectNoSecret(bad.stdout + bad.stderr, "the start-up error")
        env["BACKUP_S3_SSE"] = "AES256"
        env["BACKUP_S3_PART_SIZE"] = "1MiB"
        let small = try BackstopBinary.run(["serve"], environment: env)
        #expect(small.status == 64 && small.stderr.contains("BACKUP_S3_PART_SIZE"), "\(small.stderr)")

        var off = Self.serveEnvironment(backupDir: dir + "/off", redis: nil)
        off["BACKUP_S3_BUCKET"] = ""
        let serve = try Serve(environment: off, directory: dir)
        defer { serve.stop() }
        let body = try TestHTTP.waitFor(serve.metricsURL, timeout: 20, "a first health check") {
            $0.contains("backstop_health_check_last_timestamp_seconds ")
        }
        #expect(!body.contains("backstop_s3_"), "S3 families exported with S3 off")
    }
}
