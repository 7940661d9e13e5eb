// swift-tools-version:6.0
import PackageDescription

/// bench/metrics.sh's side-by-side of the hand-written registry and swift-prometheus, kept out
/// of the main package so CI (which builds every target there) never builds swift-prometheus.
let package = Package(
    name: "metrics-bench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "backstop", path: "../.."),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .executableTarget(
            name: "metrics-bench",
            dependencies: [
                .product(name: "BackstopMetricsServer", package: "backstop"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
