/// A failure of an archive operation, in words an operator can act on.
public struct WalArchiveError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
