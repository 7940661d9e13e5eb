import AgeEncryption
import ArgumentParser
import BackstopCore
import Foundation

/// `backstop decrypt`: an operator's way to read one encrypted backup with the identity file.
struct DecryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt one age-encrypted backup (FILE.age) with the identity file.",
        discussion: """
            Reads the AGE-SECRET-KEY-1 lines of BACKUP_ENCRYPTION_IDENTITY_FILE (or --identity; \
            mode 0600 required) and writes the plaintext (still gzip for .gz.age files) to -o, \
            atomically: nothing appears under OUT unless every chunk authenticated. Without -o the \
            plaintext goes to standard output, never onto a terminal. The same files decrypt \
            with stock age: age -d -i key.txt FILE.age

            Examples:
              backstop decrypt --identity /secure/key.txt /backups/postgres/psscript_full_20260107_020000.sql.gz.age -o /tmp/psscript.sql.gz
              BACKUP_ENCRYPTION_IDENTITY_FILE=/secure/key.txt backstop decrypt FILE.sql.gz.age | gunzip | psql psscript
            """
    )

    @Argument(help: ArgumentHelp("The encrypted backup.", valueName: "file"))
    var file: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the plaintext (atomically).", valueName: "out"))
    var output: String?

    @Option(help: ArgumentHelp("Identity file; overrides BACKUP_ENCRYPTION_IDENTITY_FILE.", valueName: "path"))
    var identity: String?

    func run() async throws {
        var env = ProcessEnvironment.current()
        if let identity { env["BACKUP_ENCRYPTION_IDENTITY_FILE"] = identity }
        let settings = try validated { try EncryptionSettings(environment: env) }
        guard let identities = try validated({ try settings.loadIdentities() }) else {
            throw ValidationError("no identity: set BACKUP_ENCRYPTION_IDENTITY_FILE or pass --identity (a file of AGE-SECRET-KEY-1… lines, mode 0600)")
        }
        guard FileSystem.exists(file) else { throw ValidationError("\(file) does not exist") }
        let source = file
        if let output {
            let bytes = try await Blocking.run { try AgeFile.decrypt(path: source, identities: identities, toFile: output) }
            FileHandle.standardError.write(Data("decrypted \(source) -> \(output) (\(bytes) bytes)\n".utf8))
        } else {
            guard isatty(1) == 0 else {
                throw ValidationError("refusing to write plaintext onto a terminal: use -o OUT or a pipe (| gunzip | psql …)")
            }
            try await Blocking.run { _ = try AgeFile.decrypt(path: source, identities: identities) { try FileSystem.writeAll(fd: 1, $0, path: "standard output") } }
        }
    }
}
