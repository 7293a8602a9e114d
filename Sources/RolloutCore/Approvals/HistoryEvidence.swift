import Foundation

// What the protected branch's history says about approval files and the files they approve,
// as values the approval rules take (SPEC §4.1 rules 3, 4 and 7). The git adapter finds them.

/// A commit as the approval rules see it: who made it, when, and its signature.
public struct CommitIdentity: Equatable, Sendable {
    public var id: String
    public var authorEmail: String
    public var committerEmail: String
    public var committerTime: Date
    /// The armored SSH signature and the bytes it covers, when the commit is signed.
    public var signature: String?
    public var signedData: [UInt8]?

    public init(
        id: String, authorEmail: String, committerEmail: String, committerTime: Date,
        signature: String? = nil, signedData: [UInt8]? = nil
    ) {
        self.id = id
        self.authorEmail = authorEmail
        self.committerEmail = committerEmail
        self.committerTime = committerTime
        self.signature = signature
        self.signedData = signedData
    }
}

/// How one approval file's current blob reached the protected branch (rules 3 and 4).
public struct ApprovalEvidence: Equatable, Sendable {
    /// M: the latest first-parent commit whose tree holds the file's current blob while its first
    /// parent's does not.
    public var mergePoint: String
    /// M's position on the first-parent line (0 is the oldest commit).
    public var mergeIndex: Int
    /// True when M is a merge (the approval commit is then on its merged side).
    public var viaMerge: Bool
    /// The approval commit; nil when M is a merge whose merged side has no such commit, or several.
    public var approvalCommit: CommitIdentity?

    public init(mergePoint: String, mergeIndex: Int, viaMerge: Bool, approvalCommit: CommitIdentity?) {
        self.mergePoint = mergePoint
        self.mergeIndex = mergeIndex
        self.viaMerge = viaMerge
        self.approvalCommit = approvalCommit
    }
}

/// One commit that made content an approver may not approve (rule 7): a plan change, or a policy change.
public struct MakerCommit: Equatable, Sendable {
    public var commit: CommitIdentity
    /// True when the policy in force where the change reached the first-parent line was in signature mode.
    public var madeInSignatureMode: Bool

    public init(commit: CommitIdentity, madeInSignatureMode: Bool) {
        self.commit = commit
        self.madeInSignatureMode = madeInSignatureMode
    }
}

/// The history of a plan.json (or of a policy proposal) on the first-parent line.
public struct ContentHistory: Equatable, Sendable {
    /// P: the first-parent commit where the content was last taken, and its position.
    public var changeCommit: String
    public var changeIndex: Int
    /// Every commit that changed the content since it was created, oldest first.
    public var makers: [MakerCommit]

    public init(changeCommit: String, changeIndex: Int, makers: [MakerCommit]) {
        self.changeCommit = changeCommit
        self.changeIndex = changeIndex
        self.makers = makers
    }
}
