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
        let cluster = try RedisCluster.start(password: "drill-pw", withSentinels: false)
        defer { cluster.shutdown() }
        let cli = try TestEnvironment.binary("redis-cli", package: "redis-tools")
        try TestProcesses.run(cli, ["-p", String(cluster.master.port), "-a", "drill-pw", "--no-auth-warning", "EVAL",
                                    "for i = 1, 300 do redis.call('SET', KEYS[1] .. i, i) end", "1", "drill:"])
        let dir = try TestEnvironment.makeTempDirectory("drill-term")
        let backupDir = dir + "/backups"
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(cluster.master.port),
                   "REDIS_PASSWORD": "drill-pw"]
        let made = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        // A drill that passes first: its record must stand after the interrupted one.
        let passed = try BackstopBinary.run(["drill", "--redis"], environment: env)
        #expect(passed.status == 0, "\(passed.stdout)\(passed.stderr)")
        let recordPath = backupDir + "/.state/restores.json"
        let recordBefore = try String(contentsOfFile: recordPath, encoding: .utf8)

        // The drill's redis-server loads slowly (100 ms a key: 30 s for the snapshot).
        let redisServer = try TestEnvironment.binary("redis-server", package: "redis-server")
        let wrapper = dir + "/slow-redis-server"
        try "#!/bin/sh\nexec \(redisServer) \"$@\" --key-load-delay 100000\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        var drillEnv = env
        drillEnv["BACKUP_REDIS_SERVER"] = wrapper
        let log = dir + "/drill.log"
        let drill = try BackstopBinary.spawn(["drill", "--redis"], environment: drillEnv, logFile: log)
        var serverPID: Int32 = 0
        try TestEnvironment.waitUntil(timeout: 20, "the drill's redis-server (log \(log))") {
            serverPID = childProcesses(of: drill).first { $0.cmdline.first?.contains("redis-server") == true }?.pid ?? 0
            return serverPID != 0
        }
        usleep(500_000)
        let temporary = NSTemporaryDirectory()
        let scratch = try FileManager.default.contentsOfDirectory(atPath: temporary).filter { $0.hasPrefix("backstop-drill-\(drill)-") }
        #expect(scratch.count == 1, "\(scratch)")
        let (_, code, seconds) = InterruptionTests.signalAndReap(drill, SIGTERM)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(code == 143, "exit \(code); \(output)")
        #expect(output.contains("stopped by SIGTERM"), "\(output)")
        #expect(seconds < 5, "the drill took \(seconds) s to stop")
        print("interruptions: backstop drill --redis exited \(code) \(String(format: "%.2f", seconds)) s after SIGTERM")
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
