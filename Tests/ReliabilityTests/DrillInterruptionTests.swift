import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM to `backstop drill` while its scratch redis-server loads the snapshot: the server
/// stopped, its scratch folder removed, exit 143, and nothing recorded (no pass, no failure
/// that would fire RestoreDrillFailed).
@Suite("drill interruption", .serialized)
struct DrillInterruptionTests {
    @Test func sigtermToARedisDrillStopsTheScratchServerAndRecordsNothing() throws {
        let redis = try SnapshottedRedis(folder: "drill-term")
        defer { redis.cluster.shutdown() }
        let (dir, env) = (redis.dir, redis.environment)
        let backupDir = dir + "/backups"
        // A drill that passes first: its record must stand after the interrupted one.
        let passed = try BackstopBinary.run(["drill", "--redis"], environment: env)
        #expect(passed.status == 0, "\(passed.stdout)\(passed.stderr)")
        let recordPath = backupDir + "/.state/restores.json"
        let recordBefore = try String(contentsOfFile: recordPath, encoding: .utf8)

        // The drill's redis-server loads slowly (100 ms a key: 30 s for the snapshot).
        let log = dir + "/drill.log"
        let (drill, serverPID) = try redis.startSlowDrill(logFile: log)
        usleep(500_000)
        let temporary = NSTemporaryDirectory()
        let scratch = try FileManager.default.contentsOfDirectory(atPath: temporary).filter { $0.hasPrefix("backstop-drill-\(drill)-") }
        #expect(scratch.count == 1, "\(scratch)")
        let (seconds, output) = InterruptionTests.expectStopsOnSIGTERM(drill, log: log, what: "drill --redis")
        #expect(!processAlive(serverPID), "the scratch redis-server \(serverPID) still runs")
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).allSatisfy { !$0.hasPrefix("backstop-drill-\(drill)-") },
                "the scratch folder \(scratch) was left")
        #expect(try String(contentsOfFile: recordPath, encoding: .utf8) == recordBefore, "the interrupted drill was recorded")
        let drillLog = (try? String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)) ?? output
        #expect(drillLog.contains("drill redis: INTERRUPTED") || output.contains("drill redis: INTERRUPTED"), "\(drillLog)")

        // The next drill is normal.
        let next = try BackstopBinary.run(["drill", "--redis"], environment: env)
        #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
        ReliabilityReport.record(
            fault: "`backstop drill --redis` SIGTERMed while its scratch redis-server loads the snapshot",
            did: "exited 143 \(String(format: "%.1f", seconds)) s after the signal: the scratch redis-server stopped, its folder (`$TMPDIR/backstop-drill-PID-*`) removed, the drill logged `INTERRUPTED` and not recorded (restores.json unchanged: the last pass stands, RestoreDrillFailed not fired); the next drill passed",
            lost: "nothing")
    }
}
