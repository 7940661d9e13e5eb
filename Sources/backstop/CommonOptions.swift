import ArgumentParser
import BackstopCore

/// Options every subcommand shares. Each flag overrides the environment variable of the same
/// meaning, so scripts can use either and there is one parser and one error per setting.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("backup-dir"), help: ArgumentHelp("Folder holding backups, logs and alerts.json.", discussion: "Overrides BACKUP_DIR (default /backups).", valueName: "path"))
    var backupDir: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", discussion: "Overrides LOG_LEVEL (default info).", valueName: "level"))
    var logLevel: String?

    /// Parses the environment with the flags written over it; a bad value becomes a
    /// `ValidationError` naming the variable, the value and what is accepted.
    func loadConfig(overrides: [String: String?] = [:]) throws -> BackstopConfig {
        let env = environment(overrides: overrides)
        return try validated { try BackstopConfig(environment: env) }
    }

    /// The process environment with the flags (and `overrides`) written over it.
    func environment(overrides: [String: String?] = [:]) -> [String: String] {
        var env = ProcessEnvironment.current()
        if let backupDir { env["BACKUP_DIR"] = backupDir }
        if let logLevel { env["LOG_LEVEL"] = logLevel }
        for (key, value) in overrides {
            if let value { env[key] = value }
        }
        return env
    }
}

/// Runs a configuration parser and turns its error (a `ConfigError`, a cron error naming the
/// field) into a `ValidationError`, which argument-parser prints with the usage.
func validated<T>(_ parse: () throws -> T) throws -> T {
    do {
        return try parse()
    } catch let error as ValidationError {
        throw error
    } catch {
        throw ValidationError("\(error)")
    }
}
