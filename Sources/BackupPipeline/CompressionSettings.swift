import BackstopCore

/// The gzip level every backup is written with (`BACKUP_COMPRESSION_LEVEL`, 1–9).
///
/// The default, 6, was chosen by measurement (bench/postgres-dump.sh; numbers in
/// docs/postgres-backups.md): it is the only level whose files are as small as the old
/// `gzip -6` (levels 1–4 are 2–25 % larger, a cost paid for every retained backup), and with
/// the blocks compressed on every core it still takes about 0.6× the old pipeline's time.
public enum CompressionSettings {
    public static let defaultLevel: Int32 = 6
    public static let variable = "BACKUP_COMPRESSION_LEVEL"

    /// Reads the level from the environment; a bad value is a `ConfigError` naming the
    /// variable.
    public static func level(environment: [String: String]) throws -> Int32 {
        guard let raw = environment[variable]?.trimmingSpaces(), !raw.isEmpty else { return defaultLevel }
        guard let value = Int32(raw), (1...9).contains(value) else {
            throw ConfigError(variable: variable, value: raw, accepted: "an integer from 1 (fastest) to 9 (smallest); default \(defaultLevel)")
        }
        return value
    }
}
