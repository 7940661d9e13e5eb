// swift-tools-version:6.0
import PackageDescription

/// Every Swift target shares these: Swift 6 language mode is set package-wide,
/// and the upcoming features keep existential and concurrency spelling explicit.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "backstop",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "backstop", targets: ["backstop"]),
        // For bench/metrics-bench only (a package of its own, so swift-prometheus stays out of
        // this one): the registry and the /metrics server, to serve them beside swift-prometheus.
        .library(name: "BackstopMetricsServer", targets: ["BackstopMetrics", "MetricsHTTPServer"]),
        // For bench/meta-decode only: the catalog's `.meta` decoder and `list --json` writer,
        // timed there against Foundation's JSONDecoder and JSONEncoder.
        .library(name: "BackupCatalog", targets: ["BackupCatalog", "BackstopCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        // System libraries (Debian -dev packages), each with a shim.h of static inline wrappers.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // hiredis's pkg-config file adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses with a warning;
        // its headers sit on the default include path, so the module map alone finds them.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),

        // malloc arenas, malloc_trim and dropping clean file pages (C: malloc.h, /proc/self/smaps).
        .target(name: "CMemoryRelease"),
        // fork + PR_SET_PDEATHSIG + execve on one long-lived thread: children die with serve.
        .target(name: "CChildSpawn"),
        // bcrypt verification through libcrypt's crypt_rn, constant-time compare.
        .target(name: "CPasswordHash", linkerSettings: [.linkedLibrary("crypt")]),
        // Configuration, files on disk, locks, logging, and the bridge for blocking C calls.
        .target(
            name: "BackstopCore",
            dependencies: ["CMemoryRelease", "CZlib", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Metric families, the snapshot a scrape reads, and the Prometheus text format.
        .target(name: "BackstopMetrics", dependencies: ["BackstopCore"], swiftSettings: strict),
        // The /metrics HTTP server on libmicrohttpd.
        .target(
            name: "MetricsHTTPServer",
            dependencies: ["CMicroHTTPD", "CPasswordHash", "BackstopCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // libpq: probes and server facts.
        .target(name: "PostgresClient", dependencies: ["CLibPQ", "BackstopCore"], swiftSettings: strict),
        // hiredis: Redis and Sentinel commands, the replication stream.
        .target(name: "RedisClient", dependencies: ["CHiredis", "BackstopCore"], swiftSettings: strict),
        // gzip (zlib) + SHA-256 + temp file, fsync, rename: the one pipeline every backup goes through.
        .target(
            name: "BackupPipeline",
            dependencies: ["CZlib", "BackstopCore", "AgeEncryption", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // age v1 encryption at rest (X25519 recipients, STREAM of ChaCha20-Poly1305), streaming.
        .target(name: "AgeEncryption", dependencies: ["BackstopCore", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: strict),
        // The backups on disk: names, `.meta` files, the record of attempts.
        .target(name: "BackupCatalog", dependencies: ["BackstopCore"], swiftSettings: strict),
        // The backup jobs (pg_dump, pg_dumpall, pg_basebackup), verification, backup metrics.
        .target(
            name: "BackupJobs",
            dependencies: ["BackstopCore", "BackstopMetrics", "BackupPipeline", "BackupCatalog", "RedisClient", "PostgresClient", "CChildSpawn", "AgeEncryption", .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // S3 over libcurl (SigV4 by curl): uploads, multipart, listing, the upload state.
        .target(
            name: "S3",
            dependencies: ["BackstopCore", "BackstopMetrics", "HTTPClient", "BackupCatalog", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Guarded restores: checks, in-process gunzip into psql, the database swap, Redis as a master.
        .target(
            name: "Restore",
            dependencies: ["BackstopCore", "BackstopMetrics", "BackupPipeline", "BackupCatalog", "BackupJobs", "RedisClient", "PostgresClient", "AgeEncryption"],
            swiftSettings: strict
        ),
        // The continuous WAL archive: segment names and LSNs, postgres/wal/, pg_receivewal, the
        // chain check and point-in-time restore.
        .target(
            name: "WalArchive",
            dependencies: ["BackstopCore", "BackstopMetrics", "BackupPipeline", "BackupCatalog", "BackupJobs", "PostgresClient",
                           "AgeEncryption", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Cron expressions and the next-run arithmetic.
        .target(name: "Scheduling", dependencies: ["BackstopCore"], swiftSettings: strict),
        // libcurl: outbound HTTP (webhooks, Alertmanager, S3).
        .target(name: "HTTPClient", dependencies: ["CCurl", "BackstopCore"], swiftSettings: strict),
        // The alert rules, the firing set and its sinks (alerts.json, webhooks, Alertmanager).
        .target(
            name: "Alerting",
            dependencies: ["BackstopCore", "BackstopMetrics", "HTTPClient", "Health", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The probes, the health state and the metrics it feeds.
        .target(
            name: "Health",
            dependencies: ["BackstopCore", "BackstopMetrics", "PostgresClient", "RedisClient"],
            swiftSettings: strict
        ),
        // The S3 side of every job: the upload after a backup, cleanup with the bucket, the
        // location="s3" series.
        .target(
            name: "OffsiteCopies",
            dependencies: ["AgeEncryption", "BackstopCore", "BackstopMetrics", "BackupCatalog", "BackupJobs", "S3", "WalArchive"],
            swiftSettings: strict
        ),
        // The one typed state store: what jobs, probes, uploads and drills write and what the
        // metrics, the alert evaluator, the scheduler's catch-up and `backstop health` read.
        .target(
            name: "BackstopState",
            dependencies: ["BackstopCore", "BackstopMetrics", "BackupCatalog", "BackupJobs", "Alerting", "Health", "Restore", "S3", "Scheduling"],
            swiftSettings: strict
        ),
        // serve's long-running parts as lifecycle services: /metrics, the health loop, the
        // alert evaluator, the scheduler and its jobs, the WAL archive.
        .target(
            name: "BackstopServices",
            dependencies: [
                "BackstopCore", "BackstopMetrics", "BackstopState", "MetricsHTTPServer", "Health", "Alerting", "Scheduling",
                "BackupCatalog", "BackupJobs", "OffsiteCopies", "Restore", "S3", "WalArchive",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "backstop",
            dependencies: [
                "BackstopCore", "BackstopMetrics", "MetricsHTTPServer", "PostgresClient", "RedisClient",
                "BackupPipeline", "Scheduling", "HTTPClient", "Health", "Alerting",
                "BackupCatalog", "BackupJobs", "Restore", "S3", "BackstopState", "BackstopServices", "AgeEncryption", "WalArchive", "OffsiteCopies",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // Real servers for the tests: PostgreSQL, Redis + replica + Sentinels, HTTP receivers.
        .target(name: "BackstopTestSupport", dependencies: ["BackstopCore", "Scheduling"], path: "Tests/BackstopTestSupport", swiftSettings: strict),

        .testTarget(name: "S3Tests", dependencies: ["S3", "HTTPClient", "BackupCatalog", "BackupPipeline", "BackstopCore", "BackstopMetrics", "BackstopTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "BackstopStateTests",
            dependencies: ["BackstopState", "BackstopServices", "Alerting", "BackupJobs", "BackupCatalog", "BackstopCore", "BackstopMetrics", "Health", "Restore", "S3", "Scheduling", "BackstopTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(name: "BackupCatalogTests", dependencies: ["BackupCatalog", "BackstopCore"], swiftSettings: strict),
        .testTarget(name: "HTTPClientTests", dependencies: ["HTTPClient", "BackstopCore", "BackstopTestSupport"], swiftSettings: strict),
        .testTarget(name: "AgeEncryptionTests", dependencies: ["AgeEncryption", "BackstopCore", "CZlib", "BackstopTestSupport"], swiftSettings: strict),
        .testTarget(name: "BackstopCoreTests", dependencies: ["BackstopCore"], swiftSettings: strict),
        .testTarget(name: "BackstopMetricsTests", dependencies: ["BackstopMetrics"], swiftSettings: strict),
        .testTarget(name: "BackupPipelineTests", dependencies: ["BackupPipeline", "AgeEncryption", "BackstopTestSupport"], swiftSettings: strict),
        .testTarget(name: "AlertingTests", dependencies: ["Alerting", "HTTPClient", "BackstopMetrics", "Health", "BackstopTestSupport"], swiftSettings: strict),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "BackstopCore", "BackstopTestSupport"], swiftSettings: strict),
        .testTarget(name: "RedisClientTests", dependencies: ["RedisClient", "BackstopTestSupport", "BackstopCore"], swiftSettings: strict),
        // The container files, the Grafana dashboard and the Prometheus rules against a real Prometheus.
        .testTarget(name: "DeploymentTests", dependencies: ["BackstopTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "BackupJobsTests",
            dependencies: ["BackupJobs", "AgeEncryption", "BackupCatalog", "BackupPipeline", "BackstopCore", "BackstopMetrics", "BackstopTestSupport", "RedisClient"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RestoreTests",
            dependencies: ["Restore", "AgeEncryption", "BackupJobs", "BackupCatalog", "BackupPipeline", "BackstopCore", "BackstopMetrics", "RedisClient", "BackstopTestSupport"],
            swiftSettings: strict
        ),
        // The web config file, TLS and basic auth, hostile clients on the metrics port.
        .testTarget(name: "MetricsHTTPServerTests", dependencies: ["MetricsHTTPServer", "BackstopCore", "BackstopTestSupport"], swiftSettings: strict),
        // The built binary under faults: SIGKILL, leftovers, permissions, secrets in argv.
        .testTarget(
            name: "ReliabilityTests",
            dependencies: ["BackstopTestSupport", "BackstopCore", "BackupJobs", "BackupCatalog"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WalArchiveTests",
            dependencies: ["WalArchive", "AgeEncryption", "BackupJobs", "BackupCatalog", "BackupPipeline", "BackstopCore", "BackstopMetrics", "BackstopTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "BackstopTestSupport", "BackstopCore", "BackstopMetrics", "MetricsHTTPServer",
                "PostgresClient", "RedisClient", "Health", "HTTPClient",
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
