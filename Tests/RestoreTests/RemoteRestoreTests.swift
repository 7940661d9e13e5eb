import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// `backstop restore postgres s3://…` into a real PostgreSQL, the copies in a real
/// S3-compatible server (moto), put there with the AWS CLI.
@Suite(.serialized) struct RemoteRestoreTests {
    static let bucket = "restore-bucket"

    /// The scene's dump and .meta under `prefix/postgres/` in the bucket; returns the address.
    static func upload(_ scene: PostgresRestoreScene, _ moto: MotoServer, prefix: String, dataFile: String? = nil) throws -> String {
        let name = FileSystem.lastComponent(of: scene.dump)
        let key = "\(prefix)/postgres/\(name)"
        try moto.aws(["s3", "cp", "--only-show-errors", dataFile ?? scene.dump, "s3://\(bucket)/\(key)"])
        try moto.aws(["s3", "cp", "--only-show-errors", scene.dump + ".meta", "s3://\(bucket)/\(key).meta"])
        return "s3://\(bucket)/\(key)"
    }

    static func environment(_ scene: PostgresRestoreScene, _ moto: MotoServer) -> [String: String] {
        var env = scene.environment
        env.merge(moto.backstopEnvironment(bucket: bucket, prefix: "site")) { _, new in new }
        return env
    }

    static func restore(_ scene: PostgresRestoreScene, _ moto: MotoServer, _ arguments: [String]) throws -> CommandResult {
        try BackstopBinary.run(["restore", "postgres"] + arguments, environment: environment(scene, moto))
    }

    static func downloads(_ scene: PostgresRestoreScene) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: scene.backupDir + "/.restore-download")) ?? []
    }

    @Test func restoresFromTheBucketAfterTheChecksAndRemovesTheDownload() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket(Self.bucket)
        let scene = try PostgresRestoreScene.make("rs_s3")
        let address = try Self.upload(scene, moto, prefix: "site")
        // Gone locally: the restore can only come from the bucket.
        try FileManager.default.removeItem(atPath: scene.dump)
        try FileManager.default.removeItem(atPath: scene.dump + ".meta")
        var outputs = ""

        // Dry run: the steps, the .meta read, the data not downloaded, nothing changed.
        let dry = try Self.restore(scene, moto, [address, "--dry-run"])
        outputs += dry.stdout + dry.stderr
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("dry run: restore \(address)") && dry.stdout.contains("download \(address)"))
        #expect(dry.stdout.contains("CREATE DATABASE \(scene.database)_restore_") && dry.stdout.contains("remove \(scene.backupDir)/.restore-download/"))
        let name = FileSystem.lastComponent(of: scene.dump)
        #expect(moto.log.contains("GET /\(Self.bucket)/site/postgres/\(name).meta HTTP"))
        #expect(!moto.log.contains("GET /\(Self.bucket)/site/postgres/\(name) "), "the dry run downloaded the dump")
        #expect(Self.downloads(scene).isEmpty)
        try scene.expectUnchanged()

        // Without --yes and without a terminal: refused, nothing changed, the download removed.
        let unconfirmed = try Self.restore(scene, moto, [address])
        #expect(unconfirmed.status != 0 && unconfirmed.stderr.contains("--yes"))
        try scene.expectUnchanged()
        #expect(Self.downloads(scene).isEmpty)

        let result = try Self.restore(scene, moto, [address, "--yes"])
        outputs += result.stdout + result.stderr
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try PostgresRestoreScene.state(scene.server, scene.database) == scene.backupState)
        let previous = try #require(try scene.databases().first { $0.hasPrefix(scene.database + "_pre_restore_") })
        #expect(try PostgresRestoreScene.state(scene.server, previous) == scene.currentState)
        #expect(Self.downloads(scene).isEmpty)
        #expect(!FileSystem.exists(scene.backupDir + "/.restore-download"))
        #expect(!outputs.contains(MotoServer.secretKey))
    }

    @Test func aFlippedByteInTheBucketIsRefusedBeforeAnythingIsTouched() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket(Self.bucket)
        let scene = try PostgresRestoreScene.make("rs_s3flip")
        var bytes = try FileSystem.read(scene.dump)
        bytes[5] ^= 0x01  // the gzip header's mtime: inflates fine, only the SHA-256 catches it
        let flipped = try TestEnvironment.makeTempDirectory("flip") + "/" + FileSystem.lastComponent(of: scene.dump)
        try Data(bytes).write(to: URL(fileURLWithPath: flipped))
        let address = try Self.upload(scene, moto, prefix: "bad", dataFile: flipped)
        let result = try Self.restore(scene, moto, [address, "--yes"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("SHA-256") && result.stderr.contains("Nothing was changed"), "\(result.stderr)")
        try scene.expectUnchanged()
        #expect(Self.downloads(scene).isEmpty)

        // A byte in the compressed data: the gzip check refuses it.
        var middle = try FileSystem.read(scene.dump)
        middle[middle.count / 2] ^= 0x01
        try Data(middle).write(to: URL(fileURLWithPath: flipped))
        let address2 = try Self.upload(scene, moto, prefix: "bad2", dataFile: flipped)
        let damaged = try Self.restore(scene, moto, [address2, "--yes"])
        #expect(damaged.status != 0 && damaged.stderr.contains("damaged"), "\(damaged.stderr)")
        try scene.expectUnchanged()

        // Another bucket, a key without .meta, a Redis key, S3 not configured: refused, nothing changed.
        let other = try Self.restore(scene, moto, ["s3://someone-else/site/postgres/\(FileSystem.lastComponent(of: scene.dump))", "--yes"])
        #expect(other.status != 0 && other.stderr.contains("BACKUP_S3_BUCKET"), "\(other.stderr)")
        // Backstop's interrupted upload (its marker, no .meta); the old scripts' metaless uploads are LegacyLayoutTests'.
        try moto.aws(["s3", "cp", "--only-show-errors", "--metadata", "backstop=test", scene.dump, "s3://\(Self.bucket)/lonely/postgres/\(FileSystem.lastComponent(of: scene.dump))"])
        let lonely = try Self.restore(scene, moto, ["s3://\(Self.bucket)/lonely/postgres/\(FileSystem.lastComponent(of: scene.dump))", "--yes"])
        #expect(lonely.status != 0 && lonely.stderr.contains("no .meta"), "\(lonely.stderr)")
        let wrongKind = try Self.restore(scene, moto, ["s3://\(Self.bucket)/site/redis/redis_20250101_000000.rdb.gz", "--yes"])
        #expect(wrongKind.status != 0 && wrongKind.stderr.contains("not a postgres_full backup"))
        let unconfigured = try BackstopBinary.run(["restore", "postgres", address, "--yes"], environment: scene.environment)
        #expect(unconfigured.status != 0 && unconfigured.stderr.contains("BACKUP_S3_BUCKET"))
        try scene.expectUnchanged()
        #expect(Self.downloads(scene).isEmpty)
        for output in [result, damaged, other, lonely, wrongKind] { #expect(!(output.stdout + output.stderr).contains(MotoServer.secretKey)) }
    }

    @Test func redisRestoresFromTheBucketIntoTheRunningMaster() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket(Self.bucket)
        let scene = try RedisRestoreScene.make()
        defer { scene.cluster.shutdown() }
        let name = FileSystem.lastComponent(of: scene.snapshot)
        let address = "s3://\(Self.bucket)/site/redis/\(name)"
        try moto.aws(["s3", "cp", "--only-show-errors", scene.snapshot, address])
        try moto.aws(["s3", "cp", "--only-show-errors", scene.snapshot + ".meta", address + ".meta"])
        try FileManager.default.removeItem(atPath: scene.snapshot)
        try FileManager.default.removeItem(atPath: scene.snapshot + ".meta")
        var env = scene.environment
        env.merge(moto.backstopEnvironment(bucket: Self.bucket, prefix: "site")) { _, new in new }
        let master = scene.cluster.master
        let before = try scene.state(master)
        let pid = try scene.processID(master)

        let dry = try BackstopBinary.run(["restore", "redis", address, "--dry-run"], environment: env)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("download \(address)") && dry.stdout.contains("REPLICAOF"))
        // Only the header was read (a Range request, answered 206), never the whole snapshot.
        #expect(moto.log.contains("GET /\(Self.bucket)/site/redis/\(name) HTTP/1.1\" 206"))
        #expect(!moto.log.contains("GET /\(Self.bucket)/site/redis/\(name) HTTP/1.1\" 200"), "the dry run downloaded the snapshot")
        #expect(!FileSystem.exists(scene.backupDir + "/.restore-download"))
        #expect(try scene.state(master) == before)

        let result = try BackstopBinary.run(["restore", "redis", address, "--yes"], environment: env)
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(result.stdout.contains("key counts per database match the .meta"))
        #expect(try scene.processID(master) == pid)
        #expect(try scene.state(master) == scene.snapshotState)
        #expect(!FileSystem.exists(scene.backupDir + "/.restore-download"))
        #expect(!(dry.stdout + dry.stderr + result.stdout + result.stderr).contains(MotoServer.secretKey))
    }
}
