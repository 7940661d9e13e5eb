import AgeEncryption
import BackstopCore
import BackupPipeline
import Foundation

/// What the PostgreSQL backup jobs need from the environment.
///
/// - `BACKUP_DIR` (default /backups)
/// - `BACKUP_POSTGRES_DATABASES=a,b,c`, else `PGDATABASE`, else `psscript`
/// - `BACKUP_COMPRESSION_LEVEL` 1–9
/// - `BACKUP_POSTGRES_BIN`: folder with pg_dump, pg_dumpall, pg_basebackup, psql,
///   pg_verifybackup (default: the newest /usr/lib/postgresql/N/bin, then PATH)
/// - PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE: read by the child programs themselves.
public struct PostgresJobSettings: Sendable {
    public var backupDir: String
    public var databases: [String]
    /// The target label of base backups (the cluster is named after its main database).
    public var clusterTarget: String
    public var compressionLevel: Int32
    public var binDirectory: String?
    public var displayHost: String
    /// Extra variables for the child programs (tests; normally empty: they inherit ours).
    public var childEnvironment: [String: String]
    /// `BACKUP_ENCRYPTION_RECIPIENTS(_FILE)`: when set, every file is age-encrypted (`.age`).
    public var encryption: EncryptionSettings

    public init(environment env: [String: String], childEnvironment: [String: String] = [:]) throws {
        let config = try BackstopConfig(environment: env)
        backupDir = config.backupDir
        displayHost = config.postgres.displayHost
        clusterTarget = config.postgres.database
        if let list = env["BACKUP_POSTGRES_DATABASES"]?.trimmingSpaces(), !list.isEmpty {
            let names = list.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
            guard !names.isEmpty, names.allSatisfy({ !$0.contains("/") && !$0.hasPrefix(".") }) else {
                throw ConfigError(variable: "BACKUP_POSTGRES_DATABASES", value: list, accepted: "comma-separated database names (no '/', not starting with '.')")
            }
            databases = names
        } else {
            databases = [config.postgres.database]
        }
        compressionLevel = try CompressionSettings.level(environment: env)
        binDirectory = env["BACKUP_POSTGRES_BIN"].flatMap { $0.isEmpty ? nil : $0 }
        self.childEnvironment = childEnvironment
        encryption = try EncryptionSettings(environment: env)
    }

    /// `.age` when backups are encrypted, else empty: appended to every data file's name.
    public var encryptedSuffix: String { encryption.isEnabled ? ".age" : "" }

    public var postgresDir: String { backupDir + "/postgres" }
    public var stateDir: String { backupDir + "/.state" }
    public var locksDir: String { backupDir + "/.locks" }

    /// The path of a PostgreSQL client program.
    public func program(_ name: String) -> String {
        if let binDirectory { return binDirectory + "/" + name }
        let root = "/usr/lib/postgresql"
        let majors = ((try? FileSystem.list(root)) ?? []).compactMap(Int.init).sorted(by: >)
        for major in majors where access("\(root)/\(major)/bin/\(name)", X_OK) == 0 {
            return "\(root)/\(major)/bin/\(name)"
        }
        return name // posix_spawnp searches PATH
    }
}

extension PostgresJobSettings {
    /// The connection settings of `childEnvironment` as libpq keywords, for an in-process
    /// connection that must reach the same server as the client programs (the rest comes
    /// from libpq's own reading of the process environment, as for the programs).
    public var libpqParameters: [String: String] {
        let keywords = [
            "PGHOST": "host", "PGHOSTADDR": "hostaddr", "PGPORT": "port", "PGUSER": "user", "PGPASSWORD": "password",
            "PGPASSFILE": "passfile", "PGSSLMODE": "sslmode", "PGSSLROOTCERT": "sslrootcert", "PGSSLCERT": "sslcert",
            "PGSSLKEY": "sslkey", "PGSERVICE": "service",
        ]
        var out: [String: String] = [:]
        for (variable, keyword) in keywords {
            if let value = childEnvironment[variable], !value.isEmpty { out[keyword] = value }
        }
        return out
    }
}
