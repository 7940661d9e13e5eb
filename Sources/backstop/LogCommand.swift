import ArgumentParser
import BackstopCore
import Foundation

/// `backstop log`: a line (or every line of stdin) into `logs/backup.log` or `logs/health.log`
/// through the same locked, rotating append Backstop itself uses, so a wrapper script or a
/// cron line kept from the old setup (`… >> /backups/logs/backup.log`) can write beside serve
/// without ever splitting a line or losing one to a rotation.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Append lines to logs/backup.log or logs/health.log (rotated like Backstop's own lines).",
        discussion: """
            Each line is written as "<RFC 3339 time> [LEVEL] <text>", one locked append per line; \
            the file rotates by BACKUP_LOG_MAX_BYTES (default 10MiB) and BACKUP_LOG_MAX_AGE \
            (default 1d), keeping BACKUP_LOG_KEEP (default 7) gzipped generations \
            (backup.log.1.gz newest). Without MESSAGE, every line of standard input is appended.

            Examples:
              backstop log "nightly export started"
              backstop log --file health --level WARN "disk check skipped"
              /usr/local/bin/export.sh 2>&1 | backstop log
            """
    )

    enum LogName: String, ExpressibleByArgument, CaseIterable {
        case backup, health
    }

    @Option(help: ArgumentHelp("Which log: backup or health.", valueName: "name"))
    var file: LogName = .backup

    @Option(help: ArgumentHelp("The level word written in brackets, e.g. INFO, WARN, ERROR.", valueName: "level"))
    var level = "INFO"

    @Argument(help: ArgumentHelp("The text of the line (several words are joined by spaces).", valueName: "message"))
    var message: [String] = []

    @OptionGroup var options: BackupDirOption

    func validate() throws {
        guard !level.isEmpty, level.allSatisfy({ $0.isLetter }) else {
            throw ValidationError("--level \(level) is not accepted: give a word of letters such as INFO, WARN or ERROR")
        }
    }

    func run() throws {
        let config = try validated { try BackstopConfig(environment: options.environment()) }
        let path = config.logsDir + "/\(file.rawValue).log"
        func write(_ text: String) throws {
            try LogFile.append("\(WallClock.rfc3339(WallClock.now())) [\(level.uppercased())] \(text)", to: path, rotation: config.logRotation)
        }
        if !message.isEmpty {
            try write(message.joined(separator: " "))
            return
        }
        while let line = readLine(strippingNewline: true) {
            try write(line)
        }
    }
}
