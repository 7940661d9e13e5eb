import AgeEncryption
import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

@Suite struct EncryptionSettingsTests {
    @Test func recipientsFromTheVariableOrAFile() throws {
        let a = AgeIdentity.generate().recipient, b = AgeIdentity.generate().recipient
        let inline = try EncryptionSettings(environment: ["BACKUP_ENCRYPTION_RECIPIENTS": " \(a.encoded), \(b.encoded) "])
        #expect(inline.recipients == [a, b])
        #expect(inline.isEnabled)
        #expect(try EncryptionSettings(environment: [:]).isEnabled == false)

        let dir = try TestEnvironment.makeTempDirectory("enc-settings")
        try Data("# backup keys\n\(a.encoded)\n\n  \(b.encoded)  \n# old: none\n".utf8).write(to: URL(fileURLWithPath: dir + "/r.txt"))
        let fromFile = try EncryptionSettings(environment: ["BACKUP_ENCRYPTION_RECIPIENTS_FILE": dir + "/r.txt"])
        #expect(fromFile.fingerprints == [a.fingerprint, b.fingerprint])
    }

    @Test func badValuesNameTheVariable() throws {
        let bad = try #require(throws: ConfigError.self) {
            try EncryptionSettings(environment: ["BACKUP_ENCRYPTION_RECIPIENTS": "age1nope"])
        }
        #expect(bad.variable == "BACKUP_ENCRYPTION_RECIPIENTS")
        #expect("\(bad)".contains("age1nope"))
        let dir = try TestEnvironment.makeTempDirectory("enc-settings-bad")
        try Data("# nothing\n".utf8).write(to: URL(fileURLWithPath: dir + "/empty.txt"))
        let empty = try #require(throws: ConfigError.self) {
            try EncryptionSettings(environment: ["BACKUP_ENCRYPTION_RECIPIENTS_FILE": dir + "/empty.txt"])
        }
        #expect(empty.variable == "BACKUP_ENCRYPTION_RECIPIENTS_FILE")
        let missing = try #require(throws: ConfigError.self) {
            try EncryptionSettings(environment: ["BACKUP_ENCRYPTION_RECIPIENTS_FILE": dir + "/missing.txt"])
        }
        #expect(missing.variable == "BACKUP_ENCRYPTION_RECIPIENTS_FILE")
    }

    @Test func identityFileMustBeMode0600() throws {
        let dir = try TestEnvironment.makeTempDirectory("enc-identity")
        let identity = AgeIdentity.generate()
        let path = dir + "/key.txt"
        try Data("# created: now\n# public key: \(identity.recipient.encoded)\n\(identity.encoded)\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        let settings = try EncryptionSettings(environment: ["BACKUP_ENCRYPTION_IDENTITY_FILE": path])
        let refused = try #require(throws: ConfigError.self) { try settings.loadIdentities() }
        #expect(refused.variable == "BACKUP_ENCRYPTION_IDENTITY_FILE")
        #expect("\(refused)".contains(path) && "\(refused)".contains("0644"))
        #expect(!"\(refused)".contains(identity.encoded), "the secret is never echoed")
        chmod(path, 0o600)
        let loaded = try #require(try settings.loadIdentities())
        #expect(loaded.map(\.recipient) == [identity.recipient])
        try Data("AGE-SECRET-KEY-1NOTAKEY\n".utf8).write(to: URL(fileURLWithPath: path))
        let garbage = try #require(throws: ConfigError.self) { try settings.loadIdentities() }
        #expect(!"\(garbage)".contains("NOTAKEY"))
    }
}
