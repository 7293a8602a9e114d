/// A command-line value that cannot be used (e.g. `--notify-url` without `NAME=`): the message says
/// which option and what it got.
public struct ArgumentProblem: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
