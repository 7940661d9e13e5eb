import BackstopTestSupport
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A bounded soak of the built `backstop serve`: the full, Redis and cleanup jobs every minute
/// against real PostgreSQL and Redis, 50 scrapes a second, a webhook receiver that fails every
/// other delivery, and the Redis server frozen for 15 s of each minute so RedisDown fires and
/// resolves. What must hold: resident memory, descriptors and threads flat from the first
/// round of jobs to the end, every alert change the serve made delivered, and no job run
/// overlapping the previous run of the same job.
///
/// `SOAK_MINUTES` (default 2) sets the length; `bench/soak.sh` runs it for 20.
@Suite("soak", .serialized)
struct SoakTests {
    static var minutes: Double {
        ProcessInfo.processInfo.environment["SOAK_MINUTES"].flatMap(Double.init) ?? 2
    }

    /// What the scraping thread saw.
    final class ScrapeTally: Sendable {
        struct Counts {
            var statuses: [Int: Int] = [:]
            var slowest = 0.0
            var total = 0.0
        }

        let counts = Mutex(Counts())
        let stop = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)

        /// `perSecond` ordinary scrapes a second from 127.0.0.2 until `stop`.
        func run(port: Int, perSecond: Double) {
            let started = Date()
            var i = 0.0
            while !stop.load(ordering: .relaxed) {
                let scrape = timedScrape(port: port)
                counts.withLock { c in
                    c.statuses[scrape.status, default: 0] += 1
                    c.slowest = max(c.slowest, scrape.seconds)
                    c.total += scrape.seconds
                }
                i += 1
                let wait = started.addingTimeInterval(i / perSecond).timeIntervalSinceNow
                if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
            }
            done.store(true, ordering: .releasing)
        }
    }

    /// True, false, true, … across threads (the receiver's answers).
    final class Alternation: Sendable {
        private let count = Atomic<Int>(0)
        func next() -> Bool { count.add(1, ordering: .relaxed).newValue % 2 == 1 }
    }

    /// Alert names in the serve's log lines `alert firing: NAME` / `alert resolved: NAME`.
    static func alertChanges(_ log: String, _ verb: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in log.split(separator: "\n") {
            guard let range = line.range(of: "alert \(verb): ") else { continue }
            let name = line[range.upperBound...].prefix { $0.isLetter || $0.isNumber }
            out[String(name), default: 0] += 1
        }
        return out
    }

    /// Per alert name, the alert changes the receiver accepted (in payloads answered 200): the
    /// distinct (fingerprint, startsAt) of the alerts carrying `status` (any status when nil) —
    /// a group's payload repeats its other alerts, an instance counts once. An alert that
    /// resolved before its first delivery went out is delivered once, as resolved (as
    /// Alertmanager does within a group's wait): the receiver still learns it happened.
    static func delivered(_ requests: [HTTPReceiver.Request], status: String?) -> [String: Int] {
        var seen: Set<[String]> = []
        var out: [String: Int] = [:]
        for request in requests where request.answered == 200 {
            guard let payload = try? request.json() as? [String: Any], let alerts = payload["alerts"] as? [[String: Any]] else { continue }
            for alert in alerts where status == nil || alert["status"] as? String == status {
                guard let name = (alert["labels"] as? [String: String])?["alertname"],
                      let fingerprint = alert["fingerprint"] as? String, let startsAt = alert["startsAt"] as? String,
                      seen.insert([fingerprint, startsAt]).inserted else { continue }
                out[name, default: 0] += 1
            }
        }
        return out
    }

    /// Per job, whether every `job X started` line is followed by its end before the next start.
    static func jobRuns(_ log: String) -> (runs: [String: Int], overlaps: [String], running: Set<String>) {
        var running: Set<String> = []
        var runs: [String: Int] = [:]
        var overlaps: [String] = []
        for line in log.split(separator: "\n") {
            guard let range = line.range(of: "job ") else { continue }
            let words = line[range.upperBound...].split(separator: " ")
            guard words.count >= 2 else { continue }
            let job = String(words[0])
            switch words[1] {
            case "started":
                if running.contains(job) { overlaps.append(String(line)) }
                running.insert(job)
                runs[job, default: 0] += 1
            case "finished", "failed", "interrupted":
                running.remove(job)
            default:
                continue
            }
        }
        return (runs, overlaps, running)
    }

    @Test func jobsEveryMinuteScrapesAndAFlakyReceiverLeaveResourcesFlat() throws {
        let minutes = Self.minutes
        let pg = try PostgresServer.shared
        let db = try pg.createDatabase(PostgresServer.uniqueDatabaseName("soak"))
        try pg.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g;", database: db)
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        _ = try redis.cli(["EVAL", "for i=1,2000 do redis.call('SET','soak:'..i, i) end return 1", "0"])
        let hook = try HTTPReceiver()
        defer { hook.stop() }
        // Half the deliveries fail: every other request is answered 500.
        let alternate = Alternation()
        hook.route { _ in
            alternate.next() ? (500, Array("failing half on purpose\n".utf8)) : (200, Array("ok\n".utf8))
        }

        let backupDir = try TestEnvironment.makeTempDirectory("soak") + "/backups"
        var env = pg.environment
        env.merge([
            "BACKUP_DIR": backupDir, "BACKUP_POSTGRES_DATABASES": db,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            "BACKUP_SCHEDULE_FULL": "* * * * *", "BACKUP_SCHEDULE_REDIS": "* * * * *", "BACKUP_SCHEDULE_CLEANUP": "* * * * *",
            "ALERT_WEBHOOK_URL": hook.url + "/alerts", "ALERT_WEBHOOK_RETRY_BACKOFF": "100ms", "ALERT_WEBHOOK_TIMEOUT": "3s",
        ]) { _, new in new }
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        let scrapes = ScrapeTally()
        let port = serve.port
        Thread { scrapes.run(port: port, perSecond: 50) }.start()
        defer { scrapes.stop.store(true, ordering: .relaxed) }

        // The start-up catch-up runs are the first round: the figures start after it.
        try TestEnvironment.waitUntil(timeout: 90, "the first full and Redis backups (log \(serve.log))") {
            let log = serve.logText()
            return log.contains("job full finished") && log.contains("job redis finished")
        }
        let start = (rss: serve.residentKiB, fds: serve.openDescriptors, threads: serve.threads)
        let began = Date()
        let end = began.addingTimeInterval(minutes * 60)
        var freezes = 0
        var frozen = false
        // Redis frozen (SIGSTOP) from second 20 to 35 of each minute, clear of the :00 runs.
        while Date() < end {
            let second = Int(Date().timeIntervalSince1970) % 60
            let shouldFreeze = (20..<35).contains(second) && end.timeIntervalSinceNow > 20
            if shouldFreeze && !frozen {
                redis.signal(SIGSTOP)
                frozen = true
                freezes += 1
            } else if !shouldFreeze && frozen {
                redis.signal(SIGCONT)
                frozen = false
            }
            #expect(serve.isRunning, "serve died during the soak")
            if !serve.isRunning { break }
            usleep(200_000)
        }
        if frozen { redis.signal(SIGCONT) }
        // Every change made so far delivered: each resolved RedisDown reached the receiver.
        try TestEnvironment.waitUntil(timeout: 30, "the last RedisDown resolved and delivered") {
            let log = serve.logText()
            let resolved = Self.alertChanges(log, "resolved")["RedisDown"] ?? 0
            return resolved >= freezes && Self.delivered(hook.requests, status: "resolved")["RedisDown"] ?? 0 >= resolved
        }
        // Let any job that started at the last minute boundary end before the figures.
        try TestEnvironment.waitUntil(timeout: 60, "the jobs of the last round to end") { Self.jobRuns(serve.logText()).running.isEmpty }
        let finish = (rss: serve.residentKiB, fds: serve.openDescriptors, threads: serve.threads)
        scrapes.stop.store(true, ordering: .relaxed)
        try TestEnvironment.waitUntil(timeout: 10, "the scraper to stop") { scrapes.done.load(ordering: .acquiring) }
        let metrics = timedScrape(port: serve.port, source: "127.0.0.1").body
        let log = serve.logText()

        let fired = Self.alertChanges(log, "firing"), resolved = Self.alertChanges(log, "resolved")
        let deliveredFiring = Self.delivered(hook.requests, status: nil)
        let deliveredResolved = Self.delivered(hook.requests, status: "resolved")
        let failedAnswers = hook.requests.filter { $0.answered != 200 }.count
        let (runs, overlaps, _) = Self.jobRuns(log)
        let skipped = metrics.split(separator: "\n").filter { $0.hasPrefix("backstop_job_skipped_total{") && !$0.hasSuffix(" 0") }
        let counts = scrapes.counts.withLock { $0 }
        let scrapeCount = counts.statuses.values.reduce(0, +)
        let seconds = Date().timeIntervalSince(began)

        print(String(format: "soak: %.1f min (%.0f s after the first round); RSS %d -> %d KiB; fds %d -> %d; threads %d -> %d",
                     minutes, seconds, start.rss, finish.rss, start.fds, finish.fds, start.threads, finish.threads))
        print(String(format: "soak: %d scrapes (%.1f/s), statuses %@, mean %.1f ms, slowest %.1f ms", scrapeCount,
                     Double(scrapeCount) / seconds, "\(counts.statuses)", counts.total / Double(max(1, scrapeCount)) * 1000, counts.slowest * 1000))
        print("soak: job runs \(runs.sorted { $0.key < $1.key }); overlaps \(overlaps.count); skipped \(skipped)")
        print("soak: Redis frozen \(freezes) times; fired \(fired), delivered (firing or already resolved) \(deliveredFiring); resolved \(resolved), delivered resolved \(deliveredResolved); \(hook.requests.count) deliveries, \(failedAnswers) answered 500")

        #expect(overlaps.isEmpty, "\(overlaps)")
        #expect(skipped.isEmpty, "\(skipped)")
        #expect((runs["full"] ?? 0) >= Int(minutes) && (runs["redis"] ?? 0) >= Int(minutes) && (runs["cleanup"] ?? 0) >= Int(minutes), "\(runs)")
        #expect(!log.contains("job full failed") && !log.contains("job redis failed"), "a backup failed during the soak")
        #expect(freezes >= 1 && (fired["RedisDown"] ?? 0) >= freezes, "RedisDown fired \(fired) for \(freezes) freezes")
        #expect(deliveredFiring == fired, "an alert that fired was not delivered")
        #expect(deliveredResolved == resolved, "an alert that resolved was not delivered")
        #expect(failedAnswers > 0, "the receiver never failed: the test proves nothing about lost alerts")
        #expect(!log.contains("delivery to"), "a delivery gave up")
        #expect(counts.statuses.keys.sorted() == [200], "\(counts.statuses)")
        #expect(Double(scrapeCount) / seconds > 40, "the scraper fell behind: \(scrapeCount) in \(seconds) s")
        #expect(finish.fds <= start.fds + 4, "fds \(start.fds) -> \(finish.fds)")
        #expect(finish.threads <= start.threads + 4, "threads \(start.threads) -> \(finish.threads)")
        #expect(finish.rss - start.rss < 16 * 1024, "RSS \(start.rss) -> \(finish.rss) KiB")

        let runText = runs.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        ReliabilityReport.record(
            fault: String(format: "soak: %.0f min of full, Redis and cleanup jobs every minute, %.0f scrapes/s, a webhook receiver failing every other delivery, Redis frozen 15 s a minute", minutes, Double(scrapeCount) / seconds),
            did: "\(runText) runs, none overlapping, none skipped; \(scrapeCount) scrapes all 200 (slowest \(String(format: "%.0f", counts.slowest * 1000)) ms); alerts fired \(fired.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")) and resolved \(resolved.values.reduce(0, +)) times, each change delivered (\(failedAnswers) of \(hook.requests.count) attempts refused)",
            lost: "nothing; RSS \(start.rss) → \(finish.rss) KiB, fds \(start.fds) → \(finish.fds), threads \(start.threads) → \(finish.threads)")
    }
}
