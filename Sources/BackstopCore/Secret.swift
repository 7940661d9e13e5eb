/// A password or key. It prints as `<redacted>` wherever it ends up (logs, errors, dumps of
/// the configuration), so a secret can only leave the process where code asks for `.value`.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
