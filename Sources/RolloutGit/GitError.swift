import CLibgit2

/// A failure reading the rollout repository, with a message that says what to do next.
public struct GitError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: Equatable, Sendable {
        case pathNotFound
        case notARepository
        case emptyRepository
        case unknownRef
        case ownedByAnotherUser
        case objectNotFound
        case fetchFailed
        /// The policy root recorded by `init` is not on the protected branch's first-parent line.
        case policyRootNotFound
        case other
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// Wraps a libgit2 return code with the call that failed and libgit2's own message.
    /// `call` is only built on failure (it often names an object id, costly to format in a hot loop).
    static func check(_ result: Int32, _ call: @autoclosure () -> String) throws(GitError) {
        guard result < 0 else { return }
        throw GitError(
            result == GIT_ENOTFOUND.rawValue ? .objectNotFound : .other, "\(call()) failed: \(lastMessage())")
    }

    static func lastMessage() -> String {
        guard let error = git_error_last(), let text = error.pointee.message else { return "unknown libgit2 error" }
        return String(cString: text).trimmingTrailingNewlines()
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
