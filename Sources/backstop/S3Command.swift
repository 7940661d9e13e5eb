import ArgumentParser
import BackstopCore
import Foundation
import S3

/// `backstop s3 …`: operations on the bucket itself.
struct S3Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "s3",
        abstract: "Operations on the S3 copies (BACKUP_S3_BUCKET).",
        subcommands: [S3ThawCommand.self]
    )
}

/// `backstop s3 thaw s3://BUCKET/KEY`: RestoreObject for an archived backup (GLACIER,
/// DEEP_ARCHIVE), the step a restore from the yearly archive asks for.
struct S3ThawCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "thaw",
        abstract: "Ask S3 to restore an archived backup (GLACIER, DEEP_ARCHIVE) to a readable copy.",
        discussion: """
            Issues RestoreObject for the object, or, given a base-backup folder such as \
            s3://bucket/postgres/wal_20250101_030000, for every object under it (.meta objects are \
            never archived and need no thaw). S3 makes the copy readable after hours (GLACIER Standard 3-5 h, Bulk 5-12 h, \
            Expedited 1-5 min; DEEP_ARCHIVE Standard up to 12 h, Bulk up to 48 h, no Expedited); \
            run the same command again to see whether it is ready, then restore as usual. The \
            archived object stays where it is; the readable copy expires after --days.

            Examples:
              backstop s3 thaw s3://backups/postgres/psscript_full_20250101_020000.sql.gz
              backstop s3 thaw s3://backups/redis/redis_20250101_040000.rdb.gz --days 3 --tier Bulk
              backstop s3 thaw s3://backups/postgres/wal_20250101_030000 --json
            """
    )

    @Argument(help: ArgumentHelp("The s3://bucket/key of the backup (as backstop list --remote prints it).", valueName: "address"))
    var address: String

    @Option(help: ArgumentHelp("How many days the readable copy is kept (1-365).", valueName: "n"))
    var days = 7

    @Option(help: ArgumentHelp("Retrieval tier: Standard, Bulk or Expedited.", valueName: "tier"))
    var tier = "Standard"

    @Flag(help: "Print a JSON object per key (key, result, state).")
    var json = false

    @OptionGroup var options: BackupDirOption

    func validate() throws {
        guard (1...365).contains(days) else { throw ValidationError("--days \(days) is not accepted: give a number of days from 1 to 365") }
        guard RemoteArchive.Tier(rawValue: tier) != nil else {
            throw ValidationError("--tier \(tier) is not accepted: give Standard, Bulk or Expedited")
        }
        guard address.hasPrefix("s3://"), address.dropFirst(5).contains("/") else {
            throw ValidationError("\(address) is not accepted: give an s3://bucket/key address, e.g. s3://backups/postgres/psscript_full_20250101_020000.sql.gz")
        }
    }

    func run() async throws {
        let settings = try S3Config.required(options.environment(), to: "thaw")
        let rest = address.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        var key = String(rest.dropFirst(bucket.count + 1))
        while key.hasSuffix("/") { key.removeLast() }
        guard bucket == settings.bucket else {
            throw ValidationError("\(address) is not in BACKUP_S3_BUCKET (\(settings.bucket)); only the configured bucket is thawed")
        }
        let archive = RemoteArchive(settings: settings)
        var keys = [key]
        if try await S3Client(settings: settings).head(key: key) == nil {
            let under = try await S3Client(settings: settings).list(prefix: String(key.dropFirst(settings.prefix.isEmpty ? 0 : settings.prefix.count + 1)) + "/")
            keys = under.map(\.key)
            guard !keys.isEmpty else {
                FileHandle.standardError.write(Data("backstop: \(address) does not exist (run backstop list --remote to see the backups)\n".utf8))
                throw ExitCode(1)
            }
        }
        var rows: [[String: String]] = []
        var failed = false
        for k in keys {
            do {
                let result = try await archive.thaw(key: k, days: days, tier: RemoteArchive.Tier(rawValue: tier)!)
                let state = try await archive.readiness(key: k)
                rows.append(["key": "s3://\(settings.bucket)/\(k)", "result": result.rawValue, "state": Self.describe(state)])
            } catch {
                failed = true
                rows.append(["key": "s3://\(settings.bucket)/\(k)", "result": "error", "error": "\(error)"])
            }
        }
        if json {
            FileHandle.standardOutput.write(Data(try JSONCoding.encode(rows, newline: true)))
        } else {
            for row in rows {
                if let error = row["error"] {
                    print("\(row["key"]!): FAILED \(error)")
                } else {
                    print("\(row["key"]!): \(row["result"]!.replacingOccurrences(of: "_", with: " ")); \(row["state"]!)")
                }
            }
        }
        if failed { throw ExitCode(1) }
    }

    static func describe(_ state: RemoteArchive.Readiness) -> String {
        switch state {
        case .readable: "readable (not archived)"
        case .archived(let c): "archived in \(c), no restore requested"
        case .thawing(let c): "restore from \(c) in progress (run this again later to check)"
        case .thawed(let c, let until): "readable copy of the \(c) object" + (until.isEmpty ? "" : " until \(until)") + "; restore it now"
        case .missing: "no such object"
        }
    }
}
