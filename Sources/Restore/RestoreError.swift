/// A restore that stopped: what failed, on what, and what the operator should do. The
/// message never carries a password (child programs get theirs through the environment).
public struct RestoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// True when nothing on the server was changed before the failure.
    public var nothingChanged: Bool

    public init(_ description: String, nothingChanged: Bool) {
        self.description = description
        self.nothingChanged = nothingChanged
    }
}
