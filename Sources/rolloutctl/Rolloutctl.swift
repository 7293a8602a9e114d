import ArgumentParser
import Foundation
import RolloutCore
import RolloutKit

@main
struct Rolloutctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rolloutctl",
        abstract: "Feature-flag rollouts driven from git: plans and approvals in a repository, applied phase by phase.",
        subcommands: [
            Init.self, Plan.self, Reconcile.self, Status.self, History.self, Validate.self, Approve.self,
            Serve.self, BacktestCommand.self, Debug.self,
        ]
    )

    /// As ArgumentParser's, except that a usage error exits 1 (SPEC §6 has 0, 1 and 2), not 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(1)
            }
            exit(withError: error)
        }
    }
}

/// Options every command that reads the repository shares.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .long, help: "The git repository (bare or not).")
    var repo: String = "."

    @Option(
        name: .long,
        help: "Branch, tag or commit to read. Default: protectedBranch from \(RepositoryLayout.approvers), else HEAD.")
    var ref: String?
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every plan, approval and policy file; exit 0 when valid, 1 when not.")

    @OptionGroup var repository: RepositoryOptions

    @Flag(name: .long, help: "Print one JSON document.")
    var json = false

    @Option(
        name: .long,
        help: "human, json, github (workflow-command annotations) or markdown (a pull-request comment).")
    var format: OutputFormat?

    @Flag(name: .long, help: "No colour (NO_COLOR is honoured too).")
    var noColor = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The first-parent commit whose policy is the root of trust (SPEC §4.3), for an installation whose "
                + "root an operator set. Default: the one the repository's state recorded, if it has one."))
    var policyRoot: String?

    static let formats: [OutputFormat] = [.human, .json, .github, .markdown]

    func validate() throws {
        _ = try OutputFormat.resolve(format: format, json: json, allowed: Self.formats, command: "validate")
    }

    func run() throws {
        let chosen = try OutputFormat.resolve(format: format, json: json, allowed: Self.formats, command: "validate")
        try exitingOnFailure {
            let report = try ValidateReport.run(
                repositoryPath: repository.repo, ref: repository.ref, policyRoot: policyRoot)
            switch chosen {
            case .json: print(report.json())
            case .github: print(report.github())
            case .markdown: print(report.markdown())
            case .human: print(report.human(style: .forStandardOutput(noColor: noColor)))
            }
            if !report.isValid { throw ExitCode(1) }
        }
    }
}

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an approval file for one phase into the work tree, bound to the current plan.",
        discussion: "With --policy, approve the policy change at HEAD instead (bound to its digest).")

    @Argument(help: "The rollout (its folder name under \(RepositoryLayout.rolloutsPrefix)).")
    var rollout: String?

    @Argument(help: "The phase to approve.")
    var phase: String?

    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Approve the change of \(RepositoryLayout.policiesPrefix) at HEAD (SPEC §4.3) "
                + "instead of a rollout phase."))
    var policy = false

    @Option(name: .long, help: "The role you approve as.")
    var role: String

    @Option(name: .long, help: "Your email. Default: git config user.email.")
    var approver: String?

    @Option(name: .long, help: "A short note kept in the approval file.")
    var comment: String?

    @Option(name: .long, help: "The git repository's work tree.")
    var repo: String = "."

    @Flag(name: .long, help: "No colour (NO_COLOR is honoured too).")
    var noColor = false

    func validate() throws {
        if policy, rollout != nil || phase != nil {
            throw ValidationError("approve --policy takes no ROLLOUT or PHASE: it approves the policy change at HEAD")
        }
        if !policy, rollout == nil || phase == nil {
            throw ValidationError("approve needs ROLLOUT and PHASE (or --policy to approve a policy change)")
        }
    }

    func run() throws {
        try exitingOnFailure {
            let style = Style.forStandardOutput(noColor: noColor)
            if policy {
                let result = try PolicyApproveResult.run(
                    repositoryPath: repo, role: role, approver: approver,
                    comment: comment)
                print(result.human(style: style))
                return
            }
            let result = try ApproveResult.run(
                repositoryPath: repo, rollout: rollout ?? "", phase: phase ?? "",
                role: role, approver: approver, comment: comment)
            print(result.human(style: style))
        }
    }
}
