import Foundation

/// Texts of rollout repository files, for tests that build real repositories.
public enum RolloutFixtures {
    public static let erin = GitFixture.Person(name: "Erin Lead", email: "erin@example.com")
    public static let quinn = GitFixture.Person(name: "Quinn QA", email: "quinn@example.com")
    public static let dana = GitFixture.Person(name: "Dana SRE", email: "dana@example.com")
    public static let sam = GitFixture.Person(name: "Sam SRE", email: "sam@example.com")
    public static let pat = GitFixture.Person(name: "Pat Owner", email: "pat@example.com")
    public static let mallory = GitFixture.Person(name: "Mallory", email: "mallory@example.com")
    public static let robin = GitFixture.Person(name: "Robin Release", email: "robin@example.com")
    public static let service = GitFixture.Person(name: "Hosting Service", email: "noreply@git.example.com")

    public static let defaultRoles: [String: [String]] = [
        "engineering-lead": ["erin@example.com"],
        "qa-lead": ["quinn@example.com"],
        "sre": ["dana@example.com", "sam@example.com"],
        "product-owner": ["pat@example.com"],
    ]

    /// EXP-001's roles, one member each (as the project's own policy has them).
    public static let exp001Roles: [String: [String]] = [
        "engineering-lead": ["erin@example.com"],
        "qa-lead": ["quinn@example.com"],
        "sre": ["dana@example.com"],
        "product-owner": ["pat@example.com"],
    ]

    /// EXP-001's policy with author identity (signature tests build their own).
    public static let exp001AuthorPolicy = policy(identity: "author", roles: exp001Roles)

    /// `policies/approvers.json`. `policyApprovals` defaults to `sre` (or the first role when there is none);
    /// `environments` maps an environment to its floor of roles (SPEC §4.2).
    public static func policy(
        identity: String = "ssh-signature", forbidSelfApproval: Bool = true,
        protectedBranch: String = "main", roles: [String: [String]] = defaultRoles,
        policyApprovals: [String]? = nil, environments: [String: [String]] = [:]
    ) -> String {
        func list(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        let roleLines = roles.keys.sorted().map { role in "    \"\(role)\": " + list(roles[role] ?? []) }
        let approvers = policyApprovals ?? (roles["sre"] != nil ? ["sre"] : Array(roles.keys.sorted().prefix(1)))
        let floors = environments.keys.sorted().map {
            "    \"\($0)\": { \"approvals\": \(list(environments[$0] ?? [])) }"
        }
        let environmentsField =
            floors.isEmpty ? "" : "  \"environments\": {\n\(floors.joined(separator: ",\n"))\n  },\n"
        return """
            {
              "apiVersion": "rolloutctl/v1",
              "protectedBranch": "\(protectedBranch)",
              "identity": "\(identity)",
              "forbidSelfApproval": \(forbidSelfApproval),
              "policyApprovals": \(list(approvers)),
            \(environmentsField)  "roles": {
            \(roleLines.joined(separator: ",\n"))
              }
            }

            """
    }

    /// A valid `plan.json`; `canaryApprovals` are the roles of phase `canary-10`.
    public static func plan(
        name: String, flag: String? = nil, description: String = "test rollout",
        canaryApprovals: [String] = ["engineering-lead", "qa-lead", "sre"],
        productionApprovals: [String] = ["product-owner"]
    ) -> String {
        func list(_ roles: [String]) -> String { "[" + roles.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        return """
            {
              "apiVersion": "rolloutctl/v1",
              "name": "\(name)",
              "flag": "\(flag ?? name.replacingOccurrences(of: "-", with: "_"))",
              "description": "\(description)",
              "phases": [
                { "name": "staging", "environment": "staging", "coverage": 100 },
                { "name": "canary-10", "environment": "production", "coverage": 10, "bake": "24h",
                  "approvals": \(list(canaryApprovals)) },
                { "name": "production", "environment": "production", "coverage": 100,
                  "approvals": \(list(productionApprovals)) }
              ],
              "health": {
                "checks": [
                  { "name": "error-rate", "query": "q", "max": 0.02, "onBreach": "rollback" }
                ]
              }
            }

            """
    }

    /// An approval file's text.
    public static func approval(
        rollout: String, phase: String, role: String, approver: String, plan: String,
        comment: String? = nil
    ) -> String {
        var text = """
            {
              "apiVersion": "rolloutctl/v1",
              "rollout": "\(rollout)",
              "phase": "\(phase)",
              "role": "\(role)",
              "approver": "\(approver)",
              "plan": "\(plan)"
            """
        if let comment { text += ",\n  \"comment\": \"\(comment)\"" }
        return text + "\n}\n"
    }
}

/// An ed25519 key made by `ssh-keygen -t ed25519 -N ''`, in its own temporary folder.
public final class SSHTestKey: @unchecked Sendable {
    private let directory: TemporaryDirectory
    /// The private key file, for `user.signingkey`.
    public let path: String
    /// `ssh-ed25519 AAAA…` (no comment).
    public let publicKey: String

    /// `ssh-keygen -t type [-b bits]`: ed25519 by default; also rsa, ecdsa.
    public init(comment: String = "test", type: String = "ed25519", bits: Int? = nil) throws {
        directory = try TemporaryDirectory(prefix: "rolloutctl-key")
        path = directory.file("id_\(type)")
        try runProgram(
            "ssh-keygen",
            ["-q", "-t", type, "-N", "", "-C", comment, "-f", path]
                + (bits.map { ["-b", String($0)] } ?? []))
        let line = try String(contentsOfFile: path + ".pub", encoding: .utf8)
        publicKey = line.split(separator: " ").prefix(2).joined(separator: " ")
    }

    private init(directory: TemporaryDirectory, path: String, publicKey: String) {
        self.directory = directory
        self.path = path
        self.publicKey = publicKey
    }

    /// This key with an OpenSSH user certificate signed by `ca` (`ssh-keygen -s`), e.g.
    /// validity `20260101Z:20260108Z`. Signing with the result (its `path` is the
    /// `-cert.pub` file) embeds the certificate in the signature; `publicKey` is the certificate.
    public func certified(by ca: SSHTestKey, identity: String, principals: [String], validity: String)
        throws -> SSHTestKey
    {
        let dir = try TemporaryDirectory(prefix: "rolloutctl-cert")
        let key = dir.file("id")
        try FileManager.default.copyItem(atPath: path, toPath: key)
        try FileManager.default.copyItem(atPath: path + ".pub", toPath: key + ".pub")
        try runProgram(
            "ssh-keygen",
            [
                "-q", "-s", ca.path, "-I", identity, "-n", principals.joined(separator: ","),
                "-V", validity, key + ".pub",
            ])
        let line = try String(contentsOfFile: key + "-cert.pub", encoding: .utf8)
        return SSHTestKey(
            directory: dir, path: key + "-cert.pub",
            publicKey: line.split(separator: " ").prefix(2).joined(separator: " "))
    }

    /// One line of an allowed_signers file.
    public func allowedSignersLine(_ principal: String, options: String? = nil) -> String {
        [principal, options, publicKey].compactMap { $0 }.joined(separator: " ")
    }
}

extension GitFixture {
    /// Commits everything staged (after `git add -A`) with an SSH signature by `key`.
    @discardableResult
    public func signedCommit(_ message: String, key: SSHTestKey, author: Person? = nil, committer: Person? = nil) throws
        -> String
    {
        try git("add", "-A")
        try git(
            [
                "-c", "gpg.format=ssh", "-c", "user.signingkey=\(key.path)", "commit", "-q", "--allow-empty", "-S",
                "-m", message,
            ], author: author, committer: committer)
        return try head()
    }

    /// Writes files and commits them signed by `key`.
    @discardableResult
    public func signedCommitFiles(
        _ files: [String: String], _ message: String, key: SSHTestKey,
        author: Person? = nil
    ) throws -> String {
        for (file, content) in files { try write(file, content) }
        return try signedCommit(message, key: key, author: author)
    }
}
