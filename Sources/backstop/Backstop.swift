import ArgumentParser
import BackstopCore

/// The `backstop` command: one binary for the service and every job it runs.
@main
struct Backstop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backstop",
        abstract: "Backups, health checks and metrics for a PostgreSQL + Redis (Sentinel) deployment.",
        version: BuildInfo.version,
        subcommands: [
            ServeCommand.self, HealthCommand.self, BackupCommand.self, ListCommand.self, VerifyCommand.self,
            ScheduleCommand.self, CleanupCommand.self, RestoreCommand.self, DrillCommand.self, WalCommand.self, LogCommand.self,
            S3Command.self, DecryptCommand.self,
        ]
    )
}
