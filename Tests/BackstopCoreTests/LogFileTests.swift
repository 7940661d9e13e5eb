import BackstopCore
import Foundation
import Testing

/// `LogFile`: size and age rotation into gzipped generations, the number kept, and the
/// settings' errors. (Two processes writing at once: IntegrationTests/LogRotationTests.)
@Suite struct LogFileTests {
    static func tempDir() throws -> String {
        var template = Array((NSTemporaryDirectory() + "backstop-logfile-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        return String(cString: made)
    }

    /// The text of a gzipped generation, through the system's gzip (what an operator runs).
    static func gunzip(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "gzip -dc \(path) failed")
        return String(decoding: data, as: UTF8.self)
    }

    static func line(_ i: Int, now: Double) -> String { "\(WallClock.rfc3339(now)) [INFO] line \(i) " + String(repeating: "x", count: 80) }

    @Test func sizeRotationKeepsTheNewestGenerationsGzippedAndLosesNoLineWithinThem() throws {
        let dir = try Self.tempDir()
        let path = dir + "/backup.log"
        let now = WallClock.now()
        let rotation = LogRotation(maxBytes: 4096, keep: 3, maxAgeSeconds: 0)
        for i in 0..<400 { try LogFile.append(Self.line(i, now: now), to: path, rotation: rotation, now: now) }

        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_size <= 4096)
        #expect(FileSystem.exists(LogFile.generation(3, of: path)))
        #expect(!FileSystem.exists(LogFile.generation(4, of: path)), "only BACKUP_LOG_KEEP generations stay")
        // Oldest to newest, the kept lines are one unbroken run ending with the last line written.
        var text = ""
        for g in [3, 2, 1] { text += try Self.gunzip(LogFile.generation(g, of: path)) }
        text += try String(contentsOfFile: path, encoding: .utf8)
        let numbers = text.split(separator: "\n").map { line -> Int in
            #expect(line.hasSuffix(String(repeating: "x", count: 80)), "a split line: \(line)")
            return Int(line.split(separator: " ")[3]) ?? -1
        }
        #expect(numbers.last == 399)
        #expect(numbers == Array((numbers.first ?? 0)...399))
        #expect(numbers.count > 100, "three 4 KiB generations and the live file hold well over 100 lines")
        #expect(!((try? FileSystem.list(dir)) ?? []).contains { $0.contains(".tmp-") }, "no temporary file left")
    }

    @Test func ageRotationStartsADayOldFileAfresh() throws {
        let dir = try Self.tempDir()
        let path = dir + "/health.log"
        let rotation = LogRotation(maxBytes: 0, keep: 7, maxAgeSeconds: 86_400)
        let yesterday = WallClock.now() - 90_000
        try LogFile.append(Self.line(1, now: yesterday), to: path, rotation: rotation, now: yesterday)
        try LogFile.append(Self.line(2, now: yesterday + 60), to: path, rotation: rotation, now: yesterday + 60)
        #expect(!FileSystem.exists(LogFile.generation(1, of: path)), "a young file is not rotated")
        let now = WallClock.now()
        try LogFile.append(Self.line(3, now: now), to: path, rotation: rotation, now: now)
        let old = try Self.gunzip(LogFile.generation(1, of: path))
        #expect(old.contains("line 1 ") && old.contains("line 2 ") && !old.contains("line 3 "))
        let live = try String(contentsOfFile: path, encoding: .utf8)
        #expect(live.split(separator: "\n").count == 1 && live.contains("line 3 "))
    }

    @Test func aLogLeftByTheOldScriptsIsRotatedOnceAndKept() throws {
        let dir = try Self.tempDir()
        let path = dir + "/backup.log"
        try "[2026-01-07 02:00:00] Starting full backup...\n".write(toFile: path, atomically: true, encoding: .utf8)
        try LogFile.append(Self.line(1, now: WallClock.now()), to: path, rotation: LogRotation())
        #expect(try Self.gunzip(LogFile.generation(1, of: path)).contains("Starting full backup"))
        try LogFile.append(Self.line(2, now: WallClock.now()), to: path, rotation: LogRotation())
        #expect(!FileSystem.exists(LogFile.generation(2, of: path)))
        #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == 2)
    }

    @Test func settingsHaveDocumentedDefaultsAndNameABadValue() throws {
        let defaults = try LogRotation(environment: [:])
        #expect(defaults == LogRotation(maxBytes: 10 << 20, keep: 7, maxAgeSeconds: 86_400))
        let set = try LogRotation(environment: ["BACKUP_LOG_MAX_BYTES": "50MiB", "BACKUP_LOG_KEEP": "30", "BACKUP_LOG_MAX_AGE": "0"])
        #expect(set == LogRotation(maxBytes: 50 << 20, keep: 30, maxAgeSeconds: 0))
        let error = #expect(throws: ConfigError.self) { try LogRotation(environment: ["BACKUP_LOG_MAX_BYTES": "lots"]) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("BACKUP_LOG_MAX_BYTES"))
        #expect(throws: ConfigError.self) { try LogRotation(environment: ["BACKUP_LOG_KEEP": "-1"]) }
        // Start-up refuses it like every other setting (serve, health, backup read BackstopConfig).
        let startup = #expect(throws: ConfigError.self) { try BackstopConfig(environment: ["BACKUP_LOG_MAX_AGE": "soon"]) }
        #expect(startup?.variable == "BACKUP_LOG_MAX_AGE")
    }
}
