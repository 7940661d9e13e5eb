import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// Two `backstop log` processes and this process append to one `backup.log` at once while it
/// rotates every 16 KiB: every line must end up exactly once, whole, in order per writer, in
/// the live file or a gzipped generation.
@Suite struct LogRotationTests {
    @Test func concurrentWritersFromTwoProcessesLoseAndSplitNoLineAcrossRotations() throws {
        let dir = try TestEnvironment.makeTempDirectory("logrotate")
        let perWriter = 4000
        let padding = String(repeating: "p", count: 60)
        for writer in ["a", "b"] {
            let lines = (0..<perWriter).map { "writer=\(writer) seq=\($0) \(padding)" }.joined(separator: "\n") + "\n"
            try lines.write(toFile: dir + "/\(writer).in", atomically: true, encoding: .utf8)
        }
        let binary = try BackstopBinary.path()
        let environment = ["BACKUP_DIR": dir, "BACKUP_LOG_MAX_BYTES": "16384", "BACKUP_LOG_KEEP": "1000"]
        let rotation = LogRotation(maxBytes: 16384, keep: 1000, maxAgeSeconds: 86_400)

        // This process writes too (as serve would) while the two children run.
        let inProcess = Thread {
            for i in 0..<perWriter {
                try? LogFile.append("\(WallClock.rfc3339(WallClock.now())) [INFO] writer=c seq=\(i) \(padding)",
                                    to: dir + "/logs/backup.log", rotation: rotation)
            }
        }
        inProcess.start()
        let script = "\"$1\" log < \"$2/a.in\" & \"$1\" log < \"$2/b.in\" & wait %1 && wait %2"
        let result = try TestProcesses.run("/bin/sh", ["-c", script, "sh", binary, dir], environment: environment, check: false)
        #expect(result.status == 0, "\(result.stderr)")
        while inProcess.isExecuting || !inProcess.isFinished { usleep(10_000) }

        let names = try FileSystem.list(dir + "/logs")
        let generations = names.compactMap { name -> Int? in
            guard name.hasPrefix("backup.log."), name.hasSuffix(".gz") else { return nil }
            return Int(name.dropFirst(11).dropLast(3))
        }.sorted()
        #expect(generations.count > 20, "the log was rotated many times (\(generations.count))")
        #expect(generations == Array(1...(generations.last ?? 0)), "generations are numbered without gaps")
        #expect(!names.contains { $0.contains(".tmp-") }, "no temporary file left: \(names)")

        var text = ""
        for g in generations.reversed() {
            let chunk = try TestProcesses.run("/bin/gzip", ["-dc", dir + "/logs/" + "backup.log.\(g).gz"]).stdout
            #expect(chunk.utf8.count <= 16384, "generation \(g) is \(chunk.utf8.count) bytes")
            text += chunk
        }
        text += try String(contentsOfFile: dir + "/logs/backup.log", encoding: .utf8)
        var next: [String: Int] = ["a": 0, "b": 0, "c": 0]
        var malformed: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let fields = line.split(separator: " ")
            guard fields.count == 5, fields[4] == padding, fields[2].hasPrefix("writer="), fields[3].hasPrefix("seq="),
                  let seq = Int(fields[3].dropFirst(4)) else {
                malformed.append(line)
                continue
            }
            let writer = String(fields[2].dropFirst(7))
            #expect(next[writer] == seq, "writer \(writer): expected seq \(next[writer] ?? -1), found \(seq)")
            next[writer] = seq + 1
        }
        #expect(malformed.isEmpty, "split or merged lines: \(malformed.prefix(3))")
        #expect(next == ["a": perWriter, "b": perWriter, "c": perWriter])
    }
}
