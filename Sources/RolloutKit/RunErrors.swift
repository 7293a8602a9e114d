import Foundation

/// The policy root of trust is not the one the state recorded (SPEC §4.3): the tip is not trusted.
struct PolicyRootChanged: Error {
    var message: String
}

/// A run that must not start (e.g. `--now` earlier than the last run).
public struct RunRefusal: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
