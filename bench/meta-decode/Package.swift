// swift-tools-version:6.0
import PackageDescription

/// bench/meta-decode.sh's timing of the catalog's hand-written JSON paths (MetaFastDecoder behind
/// `BackupMeta.decode`, and `CatalogJSON.listing` behind `list --json`) against Foundation's
/// JSONDecoder and JSONEncoder, on the same 100,000 `.meta` files. A package of its own so the
/// main package's targets stay what CI builds.
let package = Package(
    name: "meta-decode",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "backstop", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "meta-decode",
            dependencies: [.product(name: "BackupCatalog", package: "backstop")],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
