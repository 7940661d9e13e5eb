import AgeEncryption
import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import RedisClient
import Testing

/// An encrypted Redis snapshot taken by the real job from a real master, restored into it.
@Suite(.serialized) struct EncryptedRedisRestoreTests {
    @Test func encryptedSnapshotRestoresExactlyAndHoldsNoPlaintext() throws {
        let password = "age-redis-pw"
        let cluster = try RedisCluster.start(password: password)
        defer { cluster.shutdown() }
        let port = cluster.masterNode.port
        let marker = "redis-plaintext-5b1e"
        for i in 0..<300 { _ = try cluster.redisCLI(port: port, ["SET", "k:\(i)", "\(marker) \(i)"]) }
        let snapshotState = try RedisRestoreScene.state(cluster.master, password: password)
        let backupDir = try TestEnvironment.makeTempDirectory("restore-redis-age")
        let keyDir = try TestEnvironment.makeTempDirectory("restore-redis-age-key")
        let identity = AgeIdentity.generate()
        let keyFile = try EncryptedRestoreTests.writeKey(identity, in: keyDir)
        let env: [String: String] = [
            "BACKUP_DIR": backupDir,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(port), "REDIS_PASSWORD": password,
            "REDIS_SENTINELS": cluster.sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ","),
            "REDIS_SENTINEL_MASTER": cluster.masterName,
            "BACKUP_ENCRYPTION_RECIPIENTS": identity.recipient.encoded,
        ]
        let outcome = try RedisSnapshotBackup(settings: try RedisJobSettings(environment: env), log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(outcome.success, "\(outcome.message ?? "")")
        let snapshot = try #require(outcome.path)
        #expect(snapshot.hasSuffix(".rdb.gz.age"))
        #expect(try BackupMeta.read(forData: snapshot)?.encryption == "age")
        let plain = try TestEnvironment.filesContaining(marker, in: backupDir)
        #expect(plain.isEmpty, "plaintext found in: \(plain)")
        // Stock age + gunzip give an RDB.
        let age = try TestEnvironment.binary("age", package: "age")
        let head = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(keyFile)' '\(snapshot)' | gunzip | head -c 5"])
        #expect(head.stdout == "REDIS")

        for i in 0..<100 { _ = try cluster.redisCLI(port: port, ["DEL", "k:\(i)"]) }
        _ = try cluster.redisCLI(port: port, ["SET", "after", "must disappear"])
        var restoreEnv = env
        let noKey = try BackstopBinary.run(["restore", "redis", snapshot, "--yes"], environment: restoreEnv)
        #expect(noKey.status != 0)
        #expect(noKey.stderr.contains("BACKUP_ENCRYPTION_IDENTITY_FILE"), "\(noKey.stderr)")
        #expect(try RedisRestoreScene.state(cluster.master, password: password)["db0/after"] != nil, "nothing changed")
        restoreEnv["BACKUP_ENCRYPTION_IDENTITY_FILE"] = keyFile
        let result = try BackstopBinary.run(["restore", "redis", snapshot, "--yes"], environment: restoreEnv)
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(try RedisRestoreScene.state(cluster.master, password: password) == snapshotState)
    }
}
