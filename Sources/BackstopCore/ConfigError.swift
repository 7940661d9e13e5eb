/// A configuration value Backstop cannot use. The description names the variable (or flag),
/// the value as given and what would have been accepted, so the operator can fix it without
/// reading the source. Values of secret variables are never echoed.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public var variable: String
    public var value: String
    public var accepted: String

    public init(variable: String, value: String, accepted: String) {
        self.variable = variable
        self.value = value
        self.accepted = accepted
    }

    public var description: String {
        "invalid \(variable)=\"\(value)\": expected \(accepted)"
    }
}
