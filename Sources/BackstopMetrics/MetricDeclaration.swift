/// What the text format says of a family besides its name: its type, HELP text, label names
/// and (histograms) bucket bounds. `Family.declaration` gives one per family, so a family is
/// declared the same way wherever it is declared.
public struct MetricDeclaration: Sendable, Equatable {
    public var type: MetricType
    public var help: String
    public var labels: [String]
    public var buckets: [Double]

    public static func gauge(_ help: String, labels: [String] = []) -> MetricDeclaration {
        MetricDeclaration(type: .gauge, help: help, labels: labels, buckets: [])
    }

    public static func counter(_ help: String, labels: [String] = []) -> MetricDeclaration {
        MetricDeclaration(type: .counter, help: help, labels: labels, buckets: [])
    }

    public static func histogram(_ help: String, labels: [String] = [], buckets: [Double]) -> MetricDeclaration {
        MetricDeclaration(type: .histogram, help: help, labels: labels, buckets: buckets)
    }
}
