import Foundation
import RolloutCore
import RolloutGit
import RolloutTestSupport
import Testing

/// SPEC §4.0 and §4.1 against an attacker with push access to branches: random histories grown by `git`
/// (merges, squashes, fast-forwards, direct commits, withdrawals, plan edits) that also copy approval
/// commits with re-wrapped or stripped signatures and merge them again, list one key under two spellings,
/// add tags and other refs named like the branch, rewrite trees with `040000` modes, add approval names
/// that are NFC/NFD twins, force-push, and fast-forward main to a branch that merged main.
///
/// The invariant: an approval counts exactly where an answer computed from `git` plumbing (`rev-list`,
/// `log --raw`, `cat-file`, `hash-object -t commit` for signed payloads) and `ssh-keygen -Y` says it
/// does, by SPEC §4.1 rules 1–8 (rule 4 with payload identity, §4.0 rule 2). The oracle never calls
/// rolloutctl code for a verdict. `ROLLOUTCTL_ORACLE_HISTORIES` (default 200) and
/// `ROLLOUTCTL_ORACLE_FIRST_SEED` (default 1) choose the histories; a failure names its seed.
@Suite struct AdversarialHistoryOracleTests {
    typealias F = RolloutFixtures
    typealias Person = GitFixture.Person
    typealias Random = HistoryWalkOracleTests.Random
    typealias Bytes = [UInt8]

    static let histories = ProcessInfo.processInfo.environment["ROLLOUTCTL_ORACLE_HISTORIES"].flatMap { Int($0) } ?? 200
    static let firstSeed =
        ProcessInfo.processInfo.environment["ROLLOUTCTL_ORACLE_FIRST_SEED"].flatMap { UInt64($0) } ?? 1

    // MARK: The world: people, keys, policy, plans

    /// Listed in allowed_signers with dana's key spelled `ED25519` inside its blob: the same key material.
    static let danaAlt = Person(name: "Dana Alt", email: "dana.alt@example.com")
    static let rollouts = ["alpha", "beta", "gamma"]
    static let roles: [String: [String]] = [
        "engineering-lead": ["erin@example.com"],
        "qa-lead": ["quinn@example.com", "dana.alt@example.com"],
        "sre": ["dana@example.com", "sam@example.com", "robin@example.com"],
        "product-owner": ["pat@example.com", "dana.alt@example.com"],
    ]
    /// Who may approve, with the key each one signs with.
    static let approvers: [(Person, SSHTestKey)] = [
        (F.dana, Keys.dana), (F.sam, Keys.sam), (F.quinn, Keys.quinn), (F.erin, Keys.erin), (F.pat, Keys.pat),
        (F.robin, Keys.robin), (danaAlt, Keys.dana),
    ]

    /// A public key line whose blob names its type in another spelling (`ssh-keygen` reads the same key).
    static func respelled(_ key: SSHTestKey, as name: String) -> String {
        let parts = key.publicKey.split(separator: " ")
        let blob = Bytes(Data(base64Encoded: String(parts[1]))!)
        let length = Int(blob[0]) << 24 | Int(blob[1]) << 16 | Int(blob[2]) << 8 | Int(blob[3])
        let type = Bytes(name.utf8)
        let count = UInt32(type.count)
        let prefix: Bytes = [
            UInt8(count >> 24), UInt8((count >> 16) & 0xff), UInt8((count >> 8) & 0xff), UInt8(count & 0xff),
        ]
        return "\(parts[0]) " + Data(prefix + type + blob[(4 + length)...]).base64EncodedString()
    }

    static let allowedSigners: String =
        [
            Keys.dana.allowedSignersLine("dana@example.com"),
            "dana.alt@example.com " + respelled(Keys.dana, as: "ED25519"),
            Keys.sam.allowedSignersLine("sam@example.com"),
            Keys.quinn.allowedSignersLine("quinn@example.com"),
            Keys.erin.allowedSignersLine("erin@example.com"),
            "pat@example.com " + respelled(Keys.pat, as: "Ed25519"),
            Keys.robin.allowedSignersLine("robin@example.com"),
        ].joined(separator: "\n") + "\n"

    /// The roles each phase of a plan needs (the same in every revision of it).
    static func phaseRoles(_ rollout: String, _ phase: String) -> [String] {
        switch (rollout, phase) {
        case ("alpha", "canary-10"): return ["engineering-lead", "qa-lead", "sre"]
        case ("beta", "canary-10"): return ["sre", "sre"]
        case ("beta", "production"): return ["product-owner", "qa-lead"]
        case ("gamma", "canary-10"): return ["qa-lead", "sre"]
        default: return ["product-owner"]
        }
    }

    static func plan(_ name: String, revision: Int) -> String {
        switch name {
        case "alpha":
            return F.plan(name: name, description: "rev \(revision)", canaryApprovals: phaseRoles(name, "canary-10"))
        case "beta":
            // A role listed twice needs two people.
            return F.plan(
                name: name, description: "rev \(revision)", canaryApprovals: phaseRoles(name, "canary-10"),
                productionApprovals: phaseRoles(name, "production"))
        default:
            return F.plan(
                name: name, description: "rev \(revision)", canaryApprovals: phaseRoles(name, "canary-10"),
                productionApprovals: phaseRoles(name, "production"))
        }
    }

    // MARK: The generator

    /// One random history, grown by `git` and `ssh-keygen`, deterministic per seed.
    final class History {
        let fixture: GitFixture
        var random: Random
        let seed: UInt64
        /// What was done, printed with a failure.
        var log: [String] = []
        /// Signed non-merge approval commits that reached main (for copying).
        var signedApprovals: [String] = []
        /// Tips main had before it was moved (force-push, fast-forward to another line), and others.
        var earlierTips: [String] = []
        var step = 0
        var attacks: [String: Int] = [:]

        init(seed: UInt64) throws {
            self.seed = seed
            random = Random(state: seed &* 0x9E37_79B9_7F4A_7C15 &+ 1)
            fixture = try GitFixture()
            try fixture.commitFiles(
                [
                    "policies/approvers.json": F.policy(roles: AdversarialHistoryOracleTests.roles),
                    "policies/allowed_signers": AdversarialHistoryOracleTests.allowedSigners,
                ], "Policies")
            var plans: [String: String] = [:]
            for name in AdversarialHistoryOracleTests.rollouts {
                plans["rollouts/\(name)/plan.json"] = AdversarialHistoryOracleTests.plan(name, revision: 0)
            }
            try fixture.signedCommitFiles(plans, "Add the plans", key: Keys.robin, author: F.robin)
        }

        func note(_ text: String) { log.append(text) }
        func attack(_ name: String) {
            attacks[name, default: 0] += 1
            note(name)
        }

        func git(_ arguments: String..., author: Person? = nil) throws -> String {
            try fixture.git(arguments, author: author)
        }

        func tryGit(_ arguments: String..., author: Person? = nil) -> Bool {
            (try? fixture.git(arguments, author: author)) != nil
        }

        /// A file in .git, for plumbing to read.
        func scratch(_ data: Data) throws -> String {
            step += 1
            let path = fixture.path + "/.git/scratch-\(step)"
            try data.write(to: URL(fileURLWithPath: path))
            return path
        }

        func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: fixture.path + "/" + path) }

        func approvalFiles() throws -> [String] {
            try git("-c", "core.quotepath=off", "ls-files", "rollouts").split(separator: "\n").map(String.init)
                .filter { $0.contains("/approvals/") }
        }

        /// An approval's author and key, path and text: mostly a member of a role the phase needs, approving
        /// the current plan; sometimes another role, someone else, a stale plan or a body naming another phase.
        func approval() throws -> (Person, SSHTestKey, String, String) {
            let rollout = random.pick(AdversarialHistoryOracleTests.rollouts)
            let phase = random.pick(["canary-10", "canary-10", "production"])
            let needed = AdversarialHistoryOracleTests.phaseRoles(rollout, phase)
            let role =
                random.below(5) == 0
                ? random.pick(AdversarialHistoryOracleTests.roles.keys.sorted()) : random.pick(needed)
            let members = AdversarialHistoryOracleTests.approvers.filter {
                AdversarialHistoryOracleTests.roles[role]?.contains($0.0.email) == true
            }
            let (person, key) =
                random.below(4) == 0 || members.isEmpty
                ? random.pick(AdversarialHistoryOracleTests.approvers) : random.pick(members)
            var plan = try git("rev-parse", "refs/heads/main:rollouts/\(rollout)/plan.json")
            if random.below(10) == 0 {
                plan = try git("hash-object", "--stdin")  // never a plan: stale
            }
            let bodyPhase = random.below(25) == 0 ? "staging" : phase
            let local = person.email.split(separator: "@")[0]
            let path = "rollouts/\(rollout)/approvals/\(phase)/\(role)-\(local)-\(random.below(3)).json"
            let text = F.approval(rollout: rollout, phase: bodyPhase, role: role, approver: person.email, plan: plan)
            return (person, key, path, text)
        }

        /// Commits the work tree as `person`: mostly signed with their own key, sometimes with another
        /// listed key, mallory's, or not at all.
        @discardableResult
        func commitAs(_ person: Person, key: SSHTestKey, _ message: String) throws -> (String, signed: Bool) {
            switch random.below(20) {
            case 0:
                return (try fixture.commit(message, author: person), false)
            case 1:
                return (try fixture.signedCommit(message, key: Keys.mallory, author: person), true)
            case 2:
                return (
                    try fixture.signedCommit(
                        message, key: random.pick(AdversarialHistoryOracleTests.approvers).1, author: person), true
                )
            default:
                return (try fixture.signedCommit(message, key: key, author: person), true)
            }
        }

        func grow(steps: Int) throws {
            for _ in 0..<steps {
                let roll = random.below(100)
                switch roll {
                case 0..<22: try approveByMerge()
                case 22..<27: try approveBySquash()
                case 27..<31: try approveByFastForward()
                case 31..<38: try approveDirectly()
                case 38..<44: try withdraw()
                case 44..<52: try editPlan()
                case 52..<62: try copyApproval()
                case 62..<66: try refsNamedLikeTheBranch()
                case 66..<70: try zeroPaddedModes()
                case 70..<74: try forcePush()
                case 74..<79: try fastForwardToABranchThatMergedMain()
                case 79..<83: try twins()
                case 83..<88: try replayByHand()
                default:
                    try fixture.commitFiles(["docs/\(random.below(3)).md": "\(random.below(1000))\n"], "Docs")
                }
            }
            try git("checkout", "-q", "main")
        }

        func approveByMerge() throws {
            step += 1
            let branch = "pr-\(step)"
            try git("checkout", "-q", "-b", branch, "refs/heads/main")
            let (person, key, path, text) = try approval()
            try fixture.write(path, text)
            let (commit, signed) = try commitAs(person, key: key, "Approve")
            if random.below(3) == 0 {
                let (other, otherKey, second, secondText) = try approval()
                try fixture.write(second, secondText)
                try commitAs(other, key: otherKey, "Second approval on the branch")
            }
            try git("checkout", "-q", "main")
            if random.below(2) == 0 { try fixture.commitFiles(["moves/\(step).txt": "y\n"], "Main moves on") }
            try git("merge", "-q", "--no-ff", "-m", "Merge \(branch)", branch, author: F.service)
            if signed { signedApprovals.append(commit) }
            note("merge \(path) by \(person.email)")
        }

        func approveBySquash() throws {
            step += 1
            let branch = "sq-\(step)"
            try git("checkout", "-q", "-b", branch, "refs/heads/main")
            let (person, key, path, text) = try approval()
            try fixture.write(path, text)
            try commitAs(person, key: key, "Approve")
            try git("checkout", "-q", "main")
            try git("merge", "-q", "--squash", branch)
            if random.below(2) == 0 {
                let squash = try fixture.signedCommit("Approve (#\(step))", key: key, author: person)
                signedApprovals.append(squash)
            } else {
                try fixture.commit("Approve (#\(step))", author: F.service)
            }
            note("squash \(path)")
        }

        func approveByFastForward() throws {
            step += 1
            let branch = "ff-\(step)"
            try git("checkout", "-q", "-b", branch, "refs/heads/main")
            let (person, key, path, text) = try approval()
            try fixture.write(path, text)
            let (commit, signed) = try commitAs(person, key: key, "Approve")
            try git("checkout", "-q", "main")
            try git("merge", "-q", "--ff-only", branch)
            if signed { signedApprovals.append(commit) }
            note("fast-forward \(path)")
        }

        func approveDirectly() throws {
            let (person, key, path, text) = try approval()
            try fixture.write(path, text)
            let (commit, signed) = try commitAs(person, key: key, "Approve directly")
            if signed { signedApprovals.append(commit) }
            note("direct \(path)")
        }

        func withdraw() throws {
            let files = try approvalFiles()
            guard !files.isEmpty else { return }
            let path = random.pick(files)
            try fixture.remove(path)
            try fixture.commit("Withdraw \(path)", author: random.pick(AdversarialHistoryOracleTests.approvers).0)
            note("withdraw \(path)")
        }

        /// Robin (signed) mostly; erin (signed), or sam without a signature (a maker nobody can verify).
        func editPlan() throws {
            // alpha most often, and mostly back to its first content once it has another: approvals merged
            // before that content came back do not count again (rule 3).
            let rollout = random.below(2) == 0 ? "alpha" : random.pick(AdversarialHistoryOracleTests.rollouts)
            let first = AdversarialHistoryOracleTests.plan(rollout, revision: 0)
            let current = try git("show", "refs/heads/main:rollouts/\(rollout)/plan.json")
            let revert = current != first.trimmingCharacters(in: .whitespacesAndNewlines) && random.below(10) < 7
            let text = revert ? first : AdversarialHistoryOracleTests.plan(rollout, revision: 1 + random.below(2))
            let viaMerge = random.below(2) == 0
            step += 1
            if viaMerge { try git("checkout", "-q", "-b", "plan-\(step)", "refs/heads/main") }
            try fixture.write("rollouts/\(rollout)/plan.json", text)
            switch random.below(10) {
            case 0: try fixture.commit("Edit \(rollout)", author: F.sam)
            case 1, 2, 3: try fixture.signedCommit("Edit \(rollout)", key: Keys.erin, author: F.erin)
            default: try fixture.signedCommit("Edit \(rollout)", key: Keys.robin, author: F.robin)
            }
            if viaMerge {
                try git("checkout", "-q", "main")
                try git("merge", "-q", "--no-ff", "-m", "Merge plan-\(step)", "plan-\(step)", author: F.service)
            }
            note("edit \(rollout)\(viaMerge ? " via merge" : "")")
        }

        /// §4.0 rule 2: a signed approval commit the branch already had, copied with its signature's base64
        /// re-wrapped or with the signature stripped (another commit id, the same payload), merged again.
        func copyApproval() throws {
            guard !signedApprovals.isEmpty else { return }
            // The attack: an approval that counted, withdrawn (now, or earlier), its commit copied and merged.
            var original = random.pick(signedApprovals)
            for _ in 0..<4 {
                let candidate = random.pick(signedApprovals)
                let added = try git(
                    "-c", "core.quotepath=off", "diff-tree", "-r", "--no-commit-id", "--no-abbrev", "--root", candidate
                ).split(separator: "\n").compactMap { line -> (String, String)? in
                    let parts = line.split(separator: "\t", maxSplits: 1)
                    guard parts.count == 2, parts[1].contains("/approvals/") else { return nil }
                    return (String(parts[1]), String(parts[0].split(separator: " ")[3]))
                }
                guard let (path, blob) = added.first else { continue }
                original = candidate
                if tryGit("rev-parse", "--verify", "-q", "refs/heads/main:\(path)") {
                    guard try git("rev-parse", "refs/heads/main:\(path)") == blob else { break }
                    try fixture.remove(path)
                    try fixture.commit("Withdraw \(path)", author: F.dana)
                    note("withdraw \(path)")
                }
                break
            }
            let raw = try git("cat-file", "commit", original)
            var lines = raw.components(separatedBy: "\n")
            guard let begin = lines.firstIndex(of: "gpgsig -----BEGIN SSH SIGNATURE-----"),
                let end = lines.firstIndex(of: " -----END SSH SIGNATURE-----")
            else { return }
            let rewrap = random.below(2) == 0
            if rewrap {
                let base64 = lines[(begin + 1)..<end].map { $0.trimmingCharacters(in: .whitespaces) }.joined()
                let width = 40 + random.below(30)
                var wrapped: [String] = []
                var rest = Substring(base64)
                while !rest.isEmpty {
                    wrapped.append(" " + rest.prefix(width))
                    rest = rest.dropFirst(width)
                }
                lines.replaceSubrange((begin + 1)..<end, with: wrapped)
            } else {
                lines.removeSubrange(begin...end)
            }
            let object = try scratch(Data((lines.joined(separator: "\n") + "\n").utf8))
            let copy = try git("hash-object", "-t", "commit", "-w", object)
            guard copy != original else { return }
            step += 1
            try git("branch", "copy-\(step)", copy)
            guard tryGit("merge", "-q", "--no-ff", "-m", "Merge copy-\(step)", "copy-\(step)", author: F.service)
            else {
                _ = tryGit("merge", "--abort")
                return
            }
            attack(rewrap ? "copy with a re-wrapped signature" : "copy with the signature stripped")
        }

        /// §4.0 rule 1: refs spelled like the branch, at an old commit.
        func refsNamedLikeTheBranch() throws {
            let line = try git("rev-list", "--first-parent", "refs/heads/main").split(separator: "\n").map(String.init)
            let old = line[line.count - 1 - random.below(line.count)]
            let name = random.pick([
                "refs/tags/main", "refs/main", "refs/remotes/main", "refs/remotes/origin/main", "refs/tags/heads/main",
            ])
            try git("update-ref", name, old)
            attack("ref \(name)")
        }

        /// §4.0 rule 4: main's tip rewritten with its rollouts' folders spelled `040000` (git reads folders).
        func zeroPaddedModes() throws {
            let rollouts = try git("rev-parse", "refs/heads/main:rollouts")
            var tree = Data()
            for entry in try git("ls-tree", rollouts).split(separator: "\n") {
                let parts = entry.split(separator: "\t", maxSplits: 1)
                let meta = parts[0].split(separator: " ")
                let mode = meta[1] == "tree" ? "040000" : String(meta[0])
                tree.append(contentsOf: Bytes("\(mode) \(parts[1])".utf8))
                tree.append(0)
                tree.append(contentsOf: try hexBytes(String(meta[2])))
            }
            let padded = try git("hash-object", "-t", "tree", "--literally", "-w", try scratch(tree))
            let listing = try git("ls-tree", "refs/heads/main^{tree}")
            let root = try runProgram(
                "git", ["-C", fixture.path, "mktree"],
                input: listing.replacingOccurrences(of: rollouts, with: padded) + "\n"
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            let odd = try git(
                "commit-tree", root, "-p", "refs/heads/main", "-m", "Rewrite rollouts/", author: F.mallory)
            try git("update-ref", "refs/heads/main", odd)
            try git("reset", "-q", "--hard", "refs/heads/main")
            attack("040000 folders")
        }

        /// main reset to an ancestor on its first-parent line; new commits follow.
        func forcePush() throws {
            let count = try git("rev-list", "--first-parent", "--count", "refs/heads/main")
            let back = 1 + random.below(3)
            guard Int(count) ?? 0 > back + 2 else { return }
            earlierTips.append(try fixture.head())
            try git("reset", "-q", "--hard", "refs/heads/main~\(back)")
            attack("force-push back \(back)")
        }

        /// A branch from an older main commit that merges main (keeping an approval main withdrew since),
        /// and main fast-forwarded to it: the first-parent line now runs through the branch.
        func fastForwardToABranchThatMergedMain() throws {
            let count = try git("rev-list", "--first-parent", "--count", "refs/heads/main")
            let back = 1 + random.below(3)
            guard Int(count) ?? 0 > back + 2 else { return }
            step += 1
            let base = try git("rev-parse", "refs/heads/main~\(back)")
            let withdrawn = Set(try listApprovals(base)).subtracting(try listApprovals("refs/heads/main")).sorted()
            earlierTips.append(try fixture.head())
            try git("checkout", "-q", "-b", "line-\(step)", base)
            try fixture.commitFiles(["notes/\(step).txt": "n\n"], "Branch work", author: F.mallory)
            guard tryGit("merge", "-q", "--no-ff", "--no-commit", "refs/heads/main", author: F.mallory) else {
                _ = tryGit("merge", "--abort")
                try git("checkout", "-q", "-f", "main")
                return
            }
            if let path = withdrawn.first, random.below(2) == 0 {
                try git("checkout", base, "--", path)
                note("keep \(path)")
            }
            try fixture.commit("Merge main into line-\(step)", author: F.mallory)
            try git("checkout", "-q", "main")
            try git("merge", "-q", "--ff-only", "line-\(step)")
            attack("main fast-forwarded to a branch that merged main")
        }

        func listApprovals(_ commit: String) throws -> [String] {
            try git("-c", "core.quotepath=off", "ls-tree", "-r", "--name-only", commit, "--", "rollouts").split(
                separator: "\n"
            ).map(String.init).filter { $0.contains("/approvals/") }
        }

        /// §4.0 rule 4: two approval names of one folder of gamma equal after NFC (é precomposed and
        /// decomposed), which must leave alpha and beta alone; or one of them removed again.
        func twins() throws {
            let rollout = "gamma"
            let folder = "rollouts/\(rollout)/approvals/canary-10/"
            let composed = folder + "ren\u{00E9}.json"
            let decomposed = folder + "rene\u{0301}.json"
            if exists(decomposed) || exists(composed), random.below(4) != 0 {
                try fixture.remove(
                    exists(composed) && (random.below(2) == 0 || !exists(decomposed)) ? composed : decomposed)
                try fixture.commit("Remove a twin", author: F.sam)
                note("twin removed in \(rollout)")
                return
            }
            let plan = try git("rev-parse", "refs/heads/main:rollouts/\(rollout)/plan.json")
            let text = F.approval(
                rollout: rollout, phase: "canary-10", role: "sre", approver: "sam@example.com", plan: plan)
            try fixture.write(composed, text)
            try fixture.write(decomposed, text)
            try fixture.signedCommit("Two names, one text", key: Keys.sam, author: F.sam)
            attack("NFC/NFD twins in \(rollout)")
        }

        /// A branch from before an approval was withdrawn, merged with the approval kept (a merge made by
        /// hand): no commit of the merged side adds it.
        func replayByHand() throws {
            let withdrawn = try git(
                "-c", "core.quotepath=off", "log", "--first-parent", "--diff-filter=D", "--name-only",
                "--format=", "refs/heads/main", "--", "rollouts"
            ).split(separator: "\n").map(String.init).filter {
                $0.contains("/approvals/") && !exists($0)
            }
            guard let path = withdrawn.first else { return }
            let last = try git("rev-list", "-n", "1", "refs/heads/main", "--", path)
            guard tryGit("rev-parse", "--verify", "-q", "\(last)^:\(path)") else { return }
            step += 1
            try git("checkout", "-q", "-b", "replay-\(step)", "\(last)^")
            try fixture.commitFiles(["notes/replay-\(step).txt": "z\n"], "Unrelated", author: F.mallory)
            try git("checkout", "-q", "main")
            guard tryGit("merge", "-q", "--no-ff", "--no-commit", "replay-\(step)", author: F.service) else {
                _ = tryGit("merge", "--abort")
                try git("checkout", "-q", "-f", "main")
                return
            }
            try git("checkout", "\(last)^", "--", path)
            try fixture.commit("Merge replay-\(step)", author: F.service)
            attack("replay by hand")
        }
    }

    static func hexBytes(_ hex: String) throws -> Bytes {
        var bytes: Bytes = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { throw FixtureError("bad hex \(hex)") }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    // MARK: The oracle: git plumbing and ssh-keygen only

    /// One change of a path between a commit and its first parent, as `git log --raw` prints it.
    struct Change {
        var old: String?
        var new: String?
    }

    /// What git says about the history, read with plumbing.
    final class Git {
        let fixture: GitFixture
        let signers: String
        var parents: [String: [String]] = [:]
        /// commit → path bytes → change against its first parent.
        var changes: [String: [Bytes: Change]] = [:]
        /// commit → the raw commit object.
        var objects: [String: String] = [:]
        /// commit → its signed payload's id (its own id when unsigned).
        var payloads: [String: String] = [:]
        var signatureChecks: [String: (valid: Bool, fingerprint: String?)] = [:]
        var principalChecks: [String: Bool] = [:]
        var listedChecks: [String: Bool] = [:]
        var scratchCount = 0

        init(_ fixture: GitFixture) throws {
            self.fixture = fixture
            signers = fixture.path + "/.git/oracle-allowed-signers"
            // The policy never changes in these histories, so the tip's file is the one in force.
            let listed = try runProgram(
                "git", ["-C", fixture.path, "cat-file", "blob", "refs/heads/main:policies/allowed_signers"])
            try Data(listed.utf8).write(to: URL(fileURLWithPath: signers))
            // Every commit: its object, and the payload id of the signed ones (`hash-object -t commit`).
            let all = try fixture.git("rev-list", "--all").split(separator: "\n").map(String.init)
            let batch = try runProgram(
                "git", ["-C", fixture.path, "cat-file", "--batch"], input: all.joined(separator: "\n") + "\n")
            let bytes = Bytes(batch.utf8)
            var at = 0
            for id in all {
                guard let newline = bytes[at...].firstIndex(of: UInt8(ascii: "\n")) else {
                    throw FixtureError("short cat-file output")
                }
                let header = String(decoding: bytes[at..<newline], as: UTF8.self).split(separator: " ")
                guard header.count == 3, header[0] == id, let size = Int(header[2]) else {
                    throw FixtureError("cat-file: \(header)")
                }
                objects[id] = String(decoding: bytes[(newline + 1)..<(newline + 1 + size)], as: UTF8.self)
                at = newline + 1 + size + 1
            }
            var signed: [String] = []
            var files: [String] = []
            for id in all {
                let (payload, signature) = Self.split(objects[id]!)
                guard signature != nil else {
                    payloads[id] = id
                    continue
                }
                signed.append(id)
                files.append(try scratch(payload))
            }
            if !signed.isEmpty {
                let ids = try runProgram(
                    "git", ["-C", fixture.path, "hash-object", "-t", "commit", "--stdin-paths"],
                    input: files.joined(separator: "\n") + "\n"
                ).split(separator: "\n").map(String.init)
                for (id, payload) in zip(signed, ids) { payloads[id] = payload }
            }
            for id in all {
                parents[id] = objects[id]!.split(separator: "\n", omittingEmptySubsequences: false).prefix {
                    !$0.isEmpty
                }.filter {
                    $0.hasPrefix("parent ")
                }.map { String($0.dropFirst(7)) }
            }
        }

        func scratch(_ text: String) throws -> String {
            scratchCount += 1
            let path = fixture.path + "/.git/oracle-\(scratchCount)"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        /// A commit object without its signature headers, and the signature (as `git verify-commit` splits it).
        static func split(_ object: String) -> (payload: String, signature: String?) {
            var payload: [Substring] = []
            var signature: [Substring] = []
            var inHeader = true
            var inSignature = false
            for line in object.split(separator: "\n", omittingEmptySubsequences: false) {
                if inHeader && line.isEmpty { inHeader = false }
                if inHeader, line.hasPrefix("gpgsig ") || line.hasPrefix("gpgsig-sha256 ") {
                    inSignature = true
                    signature.append(line[line.index(after: line.firstIndex(of: " ")!)...])
                    continue
                }
                if inHeader, inSignature, line.hasPrefix(" ") {
                    signature.append(line.dropFirst())
                    continue
                }
                inSignature = false
                payload.append(line)
            }
            return (payload.joined(separator: "\n"), signature.isEmpty ? nil : signature.joined(separator: "\n") + "\n")
        }

        /// `git log --raw` of commits against their first parents, restricted to rollouts/.
        func readChanges(_ arguments: [String]) throws {
            let output = try fixture.git(
                [
                    "-c", "core.quotepath=off", "log", "-m", "--first-parent", "--raw", "--no-abbrev", "--no-renames",
                    "--root", "--format=commit %H",
                ] + arguments)
            var current: String?
            for line in output.split(separator: "\n") {
                if line.hasPrefix("commit ") {
                    current = String(line.dropFirst(7))
                    if changes[current!] == nil { changes[current!] = [:] }
                    continue
                }
                guard let commit = current, line.hasPrefix(":") else { continue }
                let parts = line.split(separator: "\t", maxSplits: 1)
                let meta = parts[0].split(separator: " ")
                let path = String(parts[1])
                guard path.hasPrefix("rollouts/") else { continue }
                let zero = String(repeating: "0", count: 40)
                let old = meta[2] == zero ? nil : String(meta[2])
                let new = meta[3] == zero ? nil : String(meta[3])
                changes[commit]![Bytes(path.utf8)] = Change(old: old, new: new)
            }
        }

        func change(_ commit: String, _ path: Bytes) -> Change? { changes[commit]?[path] }

        /// The merged side of a merge, one commit per payload: `rev-list` of its other parents not reachable
        /// from its first parent, without copies (same payload) of commits reachable from its first parent.
        func mergedSide(_ merge: String) throws -> [String] {
            let ps = parents[merge]!
            let side = try fixture.git(["rev-list"] + ps.dropFirst() + ["--not", ps[0]]).split(separator: "\n")
                .map(String.init)
            let had = Set(try fixture.git("rev-list", ps[0]).split(separator: "\n").map { payloads[String($0)]! })
            var seen = had
            var result: [String] = []
            for commit in side where !seen.contains(payloads[commit]!) {
                seen.insert(payloads[commit]!)
                result.append(commit)
            }
            let missing = result.filter { changes[$0] == nil }
            if !missing.isEmpty { try readChanges(["--no-walk=unsorted"] + missing) }
            return result
        }

        func blob(_ commit: String, _ path: String) -> String? {
            try? fixture.git("rev-parse", "--verify", "-q", "\(commit):\(path)")
        }

        /// `ssh-keygen -Y check-novalidate`: whether the commit carries a valid signature, and its key.
        func signature(_ commit: String) throws -> (valid: Bool, fingerprint: String?) {
            if let known = signatureChecks[commit] { return known }
            let (payload, signature) = Self.split(objects[commit]!)
            var result: (Bool, String?) = (false, nil)
            if let signature {
                let file = try scratch(signature)
                if let output = try? runProgram(
                    "ssh-keygen", ["-Y", "check-novalidate", "-n", "git", "-s", file], input: payload)
                {
                    result = (
                        true,
                        output.split(separator: " ").last.map {
                            String($0).trimmingCharacters(in: .whitespacesAndNewlines)
                        }
                    )
                }
            }
            signatureChecks[commit] = result
            return result
        }

        /// `ssh-keygen -Y verify -I principal` with the allowed_signers file.
        func signed(_ commit: String, by principal: String) throws -> Bool {
            let key = commit + " " + principal
            if let known = principalChecks[key] { return known }
            let (payload, signature) = Self.split(objects[commit]!)
            var result = false
            if let signature {
                let file = try scratch(signature)
                result =
                    (try? runProgram(
                        "ssh-keygen", ["-Y", "verify", "-f", signers, "-I", principal, "-n", "git", "-s", file],
                        input: payload)) != nil
            }
            principalChecks[key] = result
            return result
        }

        /// Signed validly by a key allowed_signers lists for someone (`-Y find-principals`, then `-Y verify`).
        func signedByAListedKey(_ commit: String) throws -> Bool {
            if let known = listedChecks[commit] { return known }
            let (_, signature) = Self.split(objects[commit]!)
            var result = false
            if let signature {
                let file = try scratch(signature)
                let principals =
                    (try? runProgram("ssh-keygen", ["-Y", "find-principals", "-f", signers, "-s", file])) ?? ""
                for principal in principals.split(separator: "\n") where try signed(commit, by: String(principal)) {
                    result = true
                }
            }
            listedChecks[commit] = result
            return result
        }
    }

    /// The oracle's verdict for one approval file at the tip.
    struct Verdict {
        var rollout: String
        var phase: String
        var role: String?
        var approver: String?
        /// Rules 1–7 hold.
        var passes: Bool
        /// The rule that fails first, as a fragment the engine's reason must contain.
        var reason: [String]
        /// The approval commit's signing key (rule 8).
        var fingerprint: String?
        /// The rule that fails, for the tally.
        var category = ""
    }

    static func json(_ text: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }

    /// SPEC §4.1 rules 1–7 for every approval file at refs/heads/main, from git and ssh-keygen.
    static func oracle(_ fixture: GitFixture) throws -> (
        tip: String, verdicts: [Bytes: Verdict], plans: [String: Plan], folded: Set<String>
    ) {
        let git = try Git(fixture)
        let tip = try fixture.git("rev-parse", "refs/heads/main")
        let line = try fixture.git("rev-list", "--first-parent", tip).split(separator: "\n").map(String.init)
        try git.readChanges(["--first-parent", tip])
        // position from the root: higher is later
        var position: [String: Int] = [:]
        for (offset, commit) in line.reversed().enumerated() { position[commit] = offset }

        var files: [Bytes: String] = [:]
        var names: [String: [Bytes]] = [:]  // folder → names (bytes)
        let listing = try fixture.git("-c", "core.quotepath=off", "ls-tree", "-r", "--full-tree", tip, "--", "rollouts")
        for entry in listing.split(separator: "\n") {
            let parts = entry.split(separator: "\t", maxSplits: 1)
            let blob = String(parts[0].split(separator: " ")[2])
            let path = Bytes(parts[1].utf8)
            files[path] = blob
            var components = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map {
                Bytes($0)
            }
            while components.count > 1 {
                let name = components.removeLast()
                let folder = String(decoding: Bytes(components.joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
                names[folder, default: []].append(name)
            }
        }
        func rolloutOf(_ path: Bytes) -> String? {
            let c = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            return c.count > 2 ? String(decoding: c[1], as: UTF8.self) : nil
        }
        // §4.0 rule 4: names that NFC folds together make their rollout invalid.
        var folded: Set<String> = []
        for (folder, list) in names {
            let unique = Set(list)
            let normalised = Set(
                unique.map { String(decoding: $0, as: UTF8.self).precomposedStringWithCanonicalMapping })
            if normalised.count < unique.count, let rollout = rolloutOf(Bytes((folder + "/x").utf8)) {
                folded.insert(rollout)
            }
        }
        let approvers = json(try fixture.git("show", "\(tip):policies/approvers.json"))!
        let roles = approvers["roles"] as! [String: [String]]

        // The plans: P, and the makers since creation (rule 7).
        var plans: [String: Plan] = [:]
        for rollout in rollouts {
            let path = "rollouts/\(rollout)/plan.json"
            let key = Bytes(path.utf8)
            guard let blob = files[key], let text = Optional(try fixture.git("cat-file", "blob", blob)),
                let body = json(text), let phases = body["phases"] as? [[String: Any]]
            else { continue }
            var plan = Plan(blob: blob)
            for phase in phases {
                plan.phases[phase["name"] as! String] = phase["approvals"] as? [String] ?? []
            }
            plan.changeCommit = line.first { git.change($0, key)?.new == blob }!
            let creation = line.first { git.change($0, key)?.new != nil && git.change($0, key)?.old == nil }!
            for commit in line.reversed() where position[commit]! >= position[creation]! {
                guard let change = git.change(commit, key), change.new != nil else { continue }
                let ps = git.parents[commit]!
                guard ps.count > 1 else {
                    plan.makers.append(commit)
                    continue
                }
                for side in try git.mergedSide(commit) {
                    if let sideChange = git.change(side, key), sideChange.old != sideChange.new {
                        plan.makers.append(side)
                    }
                }
                if !ps.contains(where: { git.blob($0, path) == change.new }) { plan.makers.append(commit) }
            }
            plans[rollout] = plan
        }

        var verdicts: [Bytes: Verdict] = [:]
        for (path, blob) in files {
            let components = String(decoding: path, as: UTF8.self).split(
                separator: "/", omittingEmptySubsequences: false
            ).map(String.init)
            guard components.count == 5, components[2] == "approvals", components[4].hasSuffix(".json") else {
                continue
            }
            let rollout = components[1]
            let phase = components[3]
            let body = json(try fixture.git("cat-file", "blob", blob))
            var verdict = Verdict(
                rollout: rollout, phase: phase, role: body?["role"] as? String, approver: body?["approver"] as? String,
                passes: false, reason: [])
            defer { verdicts[path] = verdict }
            if folded.contains(rollout) {
                verdict.reason = ["invalid"]
                verdict.category = "invalid: NFC twins"
                continue
            }
            guard let plan = plans[rollout], let body, let role = verdict.role, let approver = verdict.approver,
                body["rollout"] as? String == rollout, body["phase"] as? String == phase
            else {
                verdict.reason = ["invalid"]
                verdict.category = "invalid approval file"
                continue
            }
            // Rule 2.
            guard body["plan"] as? String == plan.blob else {
                verdict.reason = ["stale"]
                verdict.category = "stale"
                continue
            }
            guard plan.phases[phase]?.contains(role) == true else {
                verdict.reason = ["does not require role"]
                verdict.category = "does not require role"
                continue
            }
            // Rules 3 and 4: M, then the approval commit (payload identity on the merged side).
            let merge = line.first { git.change($0, path)?.new == blob }!
            guard position[merge]! >= position[plan.changeCommit]! else {
                verdict.reason = ["merged before"]
                verdict.category = "merged before"
                continue
            }
            var commit: String? = merge
            if git.parents[merge]!.count > 1 {
                let found = try git.mergedSide(merge).filter { side in
                    git.parents[side]!.count <= 1 && git.change(side, path)?.new == blob
                }
                commit = found.count == 1 ? found[0] : nil
            }
            guard let commit else {
                verdict.reason = ["approval commit not found"]
                verdict.category = "approval commit not found"
                continue
            }
            // Rule 5.
            guard try git.signed(commit, by: approver) else {
                verdict.reason = ["approval commit \(commit.prefix(12))"]
                verdict.category = "identity"
                continue
            }
            verdict.fingerprint = try git.signature(commit).fingerprint
            // Rule 6.
            guard roles[role]?.contains(approver) == true else {
                verdict.reason = ["not a member of role"]
                verdict.category = "not a member of role"
                continue
            }
            // Rule 7: every maker verifiable, and the approver none of them.
            if let maker = try plan.makers.first(where: { try !git.signedByAListedKey($0) }) {
                verdict.reason = ["plan change", "cannot be verified"]
                verdict.category = "maker cannot be verified: \(maker.prefix(7))"
                continue
            }
            var selfApproval = false
            for maker in plan.makers {
                let object = git.objects[maker]!
                let people = object.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.isEmpty }
                    .filter {
                        $0.hasPrefix("author ") || $0.hasPrefix("committer ")
                    }
                let byName = people.contains { $0.lowercased().contains("<\(approver.lowercased())>") }
                let byKey = try git.signature(maker).fingerprint == verdict.fingerprint
                if try byName || byKey || git.signed(maker, by: approver) {
                    selfApproval = true
                }
            }
            if selfApproval {
                verdict.reason = ["self-approval"]
                verdict.category = "self-approval"
                continue
            }
            verdict.passes = true
        }
        return (tip, verdicts, plans, folded)
    }

    struct Plan {
        var blob: String
        var phases: [String: [String]] = [:]
        var changeCommit = ""
        var makers: [String] = []
    }

    /// Rule 8: the largest number of approvals of one phase that can count, one role slot each, one
    /// identity (approvers sharing a name or a key are one) at most one slot.
    static func maximumAssignment(_ candidates: [Verdict], slots: [String]) -> Int {
        var identities: [[Verdict]] = []
        for verdict in candidates {
            let joined = identities.indices.filter { index in
                identities[index].contains {
                    $0.approver?.lowercased() == verdict.approver?.lowercased()
                        || ($0.fingerprint != nil && $0.fingerprint == verdict.fingerprint)
                }
            }
            var group = [verdict]
            for index in joined.reversed() { group += identities.remove(at: index) }
            identities.append(group)
        }
        var best = 0
        func search(_ index: Int, _ free: [Bool], _ filled: Int) {
            best = max(best, filled)
            guard index < identities.count, filled + identities.count - index > best else { return }
            search(index + 1, free, filled)
            let roles = Set(identities[index].compactMap(\.role))
            for (slot, role) in slots.enumerated() where free[slot] && roles.contains(role) {
                var next = free
                next[slot] = false
                search(index + 1, next, filled + 1)
            }
        }
        search(0, Array(repeating: true, count: slots.count), 0)
        return best
    }

    // MARK: The comparison

    struct Tally {
        var histories = 0
        var approvals = 0
        var counted = 0
        var reasons: [String: Int] = [:]
        var attacks: [String: Int] = [:]
        var lineChecks = 0
        /// Disagreements, each naming its seed (recorded by the test, in its own context).
        var failures: [String] = []

        mutating func add(_ other: Tally) {
            histories += other.histories
            approvals += other.approvals
            counted += other.counted
            reasons.merge(other.reasons, uniquingKeysWith: +)
            attacks.merge(other.attacks, uniquingKeysWith: +)
            lineChecks += other.lineChecks
            failures += other.failures
        }
    }

    /// Histories grown side by side (`ROLLOUTCTL_ORACLE_WORKERS`, default 2): most of the time is `git`.
    static let workers = ProcessInfo.processInfo.environment["ROLLOUTCTL_ORACLE_WORKERS"].flatMap { Int($0) } ?? 2

    /// Grows one history and compares the engine with the oracle; returns what was exercised.
    static func check(seed: UInt64, tally: inout Tally) throws {
        func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
            if !condition { tally.failures.append(message()) }
        }
        let history = try History(seed: seed)
        let fixture = history.fixture
        let cacheDir = try TemporaryDirectory()
        let cacheFile = cacheDir.file("walk")
        let steps = 6 + history.random.below(5)
        try history.grow(steps: steps / 2)
        let repository = try GitRepository(path: fixture.path)
        _ = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: cacheFile)
        history.earlierTips.append(try fixture.head())
        try history.grow(steps: steps - steps / 2)
        let context = "seed \(seed): \(history.log.joined(separator: "; "))"

        let (tip, verdicts, plans, folded) = try oracle(fixture)
        if ProcessInfo.processInfo.environment["ROLLOUTCTL_ORACLE_VERBOSE"] != nil {
            print(context)
            for (path, verdict) in verdicts {
                print("  \(String(decoding: path, as: UTF8.self)): \(verdict.passes ? "passes 1-7" : verdict.category)")
            }
        }
        let loaded = try RepositoryReader.load(repository: GitRepository(path: fixture.path), ref: nil, cacheFile: nil)
        // §4.0 rule 1: the branch, never a ref spelled like it.
        expect(loaded.revision == tip, "\(context)")
        for ref in ["main", "refs/heads/main"] {
            let viaRef = try RepositoryReader.resolve(repository: GitRepository(path: fixture.path), ref: ref)
            expect(viaRef.commit.description == tip, "ref \(ref), \(context)")
        }
        // §4.0 rule 4: names NFC folds make their rollout invalid, and that rollout alone.
        for rollout in rollouts {
            let valid = loaded.snapshot.rollout(named: rollout)?.isValid
            expect(valid == !folded.contains(rollout), "\(rollout) valid: \(String(describing: valid)); \(context)")
        }
        // The cache, kept across a force-push or copies, agrees with a cold walk.
        let cached = try RepositoryReader.load(
            repository: GitRepository(path: fixture.path), ref: nil, cacheFile: cacheFile)
        expect(cached.approvals == loaded.approvals, "cached walk, \(context)")
        // §4.0 rule 5's primitive: whether an earlier tip is on the first-parent line, as git says.
        let line = Set(try fixture.git("rev-list", "--first-parent", tip).split(separator: "\n").map(String.init))
        for earlier in history.earlierTips {
            let onLine = try GitRepository(path: fixture.path).isOnFirstParentLine(
                ObjectID(hex: earlier)!, of: ObjectID(hex: tip)!)
            expect(onLine == line.contains(earlier), "\(earlier.prefix(7)) on the line of main, \(context)")
            tally.lineChecks += 1
        }

        var engine: [Bytes: ApprovalStatus] = [:]
        for statuses in loaded.approvals.values {
            for status in statuses { engine[Bytes(status.path.utf8)] = status }
        }
        // Every approval the engine counts is a file at the tip.
        for (path, status) in engine where status.counted && verdicts[path] == nil {
            tally.failures.append("\(status.path) counted but not an approval file at the tip; \(context)")
        }
        // Rules 1–7 per file; rule 8 per phase: the counted ones are a largest valid assignment.
        var byPhase: [String: [Bytes]] = [:]
        for (path, verdict) in verdicts.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            tally.approvals += 1
            let status = engine[path]
            let name = String(decoding: path, as: UTF8.self)
            let counted = status?.counted ?? false
            if verdict.passes {
                byPhase[verdict.rollout + "/" + verdict.phase, default: []].append(path)
                continue
            }
            tally.reasons[verdict.category.split(separator: ":")[0].description, default: 0] += 1
            if counted {
                tally.failures.append("\(name) counted; git and ssh-keygen say not (\(verdict.reason)); \(context)")
            } else if let reason = status?.reason {
                for fragment in verdict.reason where !reason.contains(fragment) {
                    tally.failures.append("\(name): reason \"\(reason)\" lacks \"\(fragment)\"; \(context)")
                }
            }
        }
        for (key, paths) in byPhase {
            let parts = key.split(separator: "/")
            let slots = plans[String(parts[0])]?.phases[String(parts[1])] ?? []
            let candidates = paths.map { verdicts[$0]! }
            let best = maximumAssignment(candidates, slots: slots)
            let counted = paths.filter { engine[$0]?.counted == true }
            tally.counted += counted.count
            expect(counted.count == best, "\(key): \(counted.count) counted, largest assignment \(best); \(context)")
            // The ones counted use distinct identities and fit the slots.
            let chosen = counted.map { verdicts[$0]! }
            for role in Set(chosen.compactMap(\.role)) {
                expect(
                    chosen.filter { $0.role == role }.count <= slots.filter { $0 == role }.count,
                    "\(key) \(role); \(context)")
            }
            for (i, a) in chosen.enumerated() {
                for b in chosen[(i + 1)...]
                where a.approver?.lowercased() == b.approver?.lowercased()
                    || (a.fingerprint != nil && a.fingerprint == b.fingerprint)
                {
                    tally.failures.append(
                        "\(key): \(a.approver ?? "?") and \(b.approver ?? "?") are one identity; \(context)")
                }
            }
            for path in paths where engine[path]?.counted != true {
                let reason = engine[path]?.reason ?? ""
                let rule8 = ["already", "one key"].contains { reason.contains($0) }
                expect(rule8, "\(String(decoding: path, as: UTF8.self)) passes rules 1-7 but: \(reason); \(context)")
                tally.reasons["rule 8", default: 0] += 1
            }
        }
        for (name, count) in history.attacks {
            tally.attacks[name.split(separator: " in ")[0].description, default: 0] += count
        }
        tally.histories += 1
        _ = cacheDir
    }

    @Test func approvalsCountOnlyWhereGitAndSSHKeygenSayTheyDo() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let lock = NSLock()
        nonisolated(unsafe) var tally = Tally()
        let seeds = (0..<Self.histories).map { Self.firstSeed + UInt64($0) }
        let workers = max(1, min(Self.workers, seeds.count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var mine = Tally()
            for seed in stride(from: worker, to: seeds.count, by: workers).map({ seeds[$0] }) {
                do {
                    try Self.check(seed: seed, tally: &mine)
                } catch {
                    mine.failures.append("seed \(seed): \(error)")
                }
            }
            lock.withLock { tally.add(mine) }
        }
        for failure in tally.failures { Issue.record(Comment(rawValue: failure)) }
        print(
            "adversarial oracle: \(tally.histories) histories (seeds \(Self.firstSeed)…"
                + "\(Self.firstSeed + UInt64(Self.histories) - 1)), \(tally.approvals) approvals, \(tally.counted) counted, "
                + "in \(clock.now - start); not counted: \(tally.reasons.sorted { $0.key < $1.key }); "
                + "attacks: \(tally.attacks.sorted { $0.key < $1.key })")
        // The histories exercised every attack and every rule, not only the easy paths.
        guard Self.histories >= 50 else { return }
        #expect(tally.counted > tally.histories / 2)
        for attack in [
            "copy with a re-wrapped signature", "copy with the signature stripped", "040000 folders", "NFC/NFD twins",
            "main fast-forwarded to a branch that merged main", "replay by hand",
        ] {
            #expect(tally.attacks[attack, default: 0] > 0, "\(attack) never happened")
        }
        #expect(tally.attacks.keys.contains { $0.hasPrefix("ref ") })
        #expect(tally.attacks.keys.contains { $0.hasPrefix("force-push") })
        for reason in [
            "stale", "merged before", "approval commit not found", "identity", "not a member of role", "self-approval",
            "cannot be verified", "invalid", "rule 8",
        ] {
            #expect(tally.reasons.keys.contains { $0.contains(reason) }, "no approval failed by \(reason)")
        }
        #expect(tally.lineChecks >= tally.histories)
    }
}
