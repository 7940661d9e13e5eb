import BackstopCore
import BackstopMetrics
import BackupCatalog
import Foundation

/// What has been copied to S3, and how the last attempts went, in
/// `$BACKUP_DIR/.state/s3_uploads.json`: a backup not listed is pending and is retried on the
/// next cycle; `consecutiveFailures` feeds S3UploadFailing until an upload succeeds.
public struct S3UploadState: Codable, Sendable, Equatable {
    /// Relative path (`postgres/x.sql.gz`) → Unix time of the upload.
    public var uploaded: [String: Double] = [:]
    public var consecutiveFailures = 0
    public var lastFailure: Double?
    public var lastSuccess: Double?
    public var lastError: String?

    enum CodingKeys: String, CodingKey {
        case uploaded
        case consecutiveFailures = "consecutive_failures"
        case lastFailure = "last_failure"
        case lastSuccess = "last_success"
        case lastError = "last_error"
    }

    public init() {}

    public static func path(backupDir: String) -> String { backupDir + "/.state/s3_uploads.json" }

    public static func load(backupDir: String) -> S3UploadState {
        guard let bytes = try? FileSystem.read(path(backupDir: backupDir)),
              let state = try? JSONDecoder().decode(S3UploadState.self, from: Data(bytes)) else { return S3UploadState() }
        return state
    }

    public func save(backupDir: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(self)), to: Self.path(backupDir: backupDir), mode: 0o640)
    }
}

/// Copies every good backup not yet uploaded (data, then `.meta`, so a `.meta` in S3 always
/// describes a complete copy), newest first; stops at the first failure (the endpoint is
/// probably down) and leaves the rest pending. The local backups are never touched.
public struct S3Uploader: Sendable {
    public struct Result: Sendable {
        public var uploaded: [String] = []
        public var failed: [String] = []
        public var pending: Int = 0
        public var error: String?
    }

    public let settings: S3Settings
    public let backupDir: String
    let metrics: MetricsRegistry?

    public init(settings: S3Settings, backupDir: String, metrics: MetricsRegistry? = nil) {
        self.settings = settings
        self.backupDir = backupDir
        self.metrics = metrics
    }

    /// Declares the S3 families (only when S3 is on), every series at 0 until something happens.
    /// The two gauges are read from `s3_uploads.json`, so they survive restarts and also show
    /// uploads made by `backstop backup …` run by hand.
    public static func declareMetrics(in registry: MetricsRegistry) {
        registry.declare(Family.s3Uploads)
        for result in ["success", "failure"] { registry.touch(Family.s3Uploads, ["result": result]) }
        for family in [Family.s3UploadConsecutiveFailures, .s3UploadLastSuccess] {
            registry.declare(family)
            registry.touch(family)
        }
    }

    /// Sets the gauges from the upload state.
    public static func publish(_ state: S3UploadState, in registry: MetricsRegistry) {
        registry.set(Family.s3UploadConsecutiveFailures, [:], Double(state.consecutiveFailures))
        registry.set(Family.s3UploadLastSuccess, [:], state.lastSuccess ?? 0)
    }

    /// Uploads what is pending. Holds `.state/s3.lock` (a second run at once throws `FileLock.Held`).
    public func uploadPending() async throws -> Result {
        try FileSystem.createDirectory(backupDir + "/.state")
        let lock = try FileLock(path: backupDir + "/.state/s3.lock", purpose: "S3 upload")
        defer { lock.release() }
        if let metrics { Self.declareMetrics(in: metrics) }
        // The state file and the catalog scan are disk reads: off the cooperative pool.
        let backupDir = self.backupDir
        var (state, entries) = await Blocking.run {
            (S3UploadState.load(backupDir: backupDir), BackupCatalog(backupDir: backupDir).list().filter(\.isGood))
        }
        let present = Set(entries.map { relative($0.path) })
        state.uploaded = state.uploaded.filter { present.contains($0.key) }  // forget backups retention removed
        var result = Result()
        let client = S3Client(settings: settings)
        let pending = entries.filter { state.uploaded[relative($0.path)] == nil }
        for (index, entry) in pending.enumerated() {
            let rel = relative(entry.path)
            do {
                if entry.isDirectory {
                    // A base backup: base.tar.gz, pg_wal.tar.gz, backup_manifest (and any
                    // tablespace tars), each under the folder's own key prefix.
                    for name in try Self.regularFiles(in: entry.path) {
                        try await client.upload(file: entry.path + "/" + name, key: settings.key(for: rel + "/" + name))
                    }
                } else {
                    try await client.upload(file: entry.path, key: settings.key(for: rel))
                }
                try await client.upload(file: entry.path + ".meta", key: settings.key(for: rel + ".meta"))
                let now = WallClock.now()
                state.uploaded[rel] = now
                state.consecutiveFailures = 0
                state.lastSuccess = now
                state.lastError = nil
                result.uploaded.append(rel)
                metrics?.add(Family.s3Uploads, ["result": "success"])
            } catch {
                state.consecutiveFailures += 1
                state.lastFailure = WallClock.now()
                state.lastError = redacted("\(error)")
                result.failed.append(rel)
                result.error = state.lastError
                result.pending = pending.count - index
                metrics?.add(Family.s3Uploads, ["result": "failure"])
                try await Self.save(state, backupDir: backupDir)
                if let metrics { Self.publish(state, in: metrics) }
                return result
            }
            try await Self.save(state, backupDir: backupDir)
            if let metrics { Self.publish(state, in: metrics) }
        }
        try await Self.save(state, backupDir: backupDir)
        if let metrics { Self.publish(state, in: metrics) }
        return result
    }

    /// Writes the state (fsync, rename) on the blocking pool.
    static func save(_ state: S3UploadState, backupDir: String) async throws {
        try await Blocking.run { try state.save(backupDir: backupDir) }
    }

    /// The regular files under a base-backup folder, relative to it, sorted; hidden names skipped.
    static func regularFiles(in folder: String, under relative: String = "") throws -> [String] {
        var out: [String] = []
        let here = relative.isEmpty ? folder : folder + "/" + relative
        for name in try FileSystem.list(here).sorted() where !name.hasPrefix(".") {
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard lstat(folder + "/" + rel, &st) == 0 else { throw FileSystemError.errno(errno, "stat", folder + "/" + rel) }
            switch st.st_mode & S_IFMT {
            case S_IFREG: out.append(rel)
            case S_IFDIR: out += try regularFiles(in: folder, under: rel)
            default: continue
            }
        }
        return out
    }

    /// An error text with the secret key and session token blanked, should a layer below ever
    /// echo one (none is known to; this is the last line of defence before logs and alerts).
    public func redacted(_ text: String) -> String {
        settings.credentials.redact(text)
    }

    func relative(_ path: String) -> String {
        path.hasPrefix(backupDir + "/") ? String(path.dropFirst(backupDir.count + 1)) : path
    }
}
