import ArgumentParser
import Foundation
import Logging
import RolloutCore
import RolloutKit

/// `--state`: a SQLite path, or a PostgreSQL database (SPEC §10).
let stateHelp = ArgumentHelp(
    "The state: a SQLite path (default: <repo>/.rolloutctl/state.sqlite) or "
        + "postgres://USER@HOST:PORT/DB (the password from PGPASSWORD).", valueName: "PATH|URL")

/// How every command ends on a failure: an `ExitCode` or a usage error (`ValidationError`) passes
/// through; anything else is printed as `rolloutctl: …` and exits 1.
func exitingOnFailure<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        printFailure(error)
        throw ExitCode(1)
    }
}

/// Prints a command's failure as `rolloutctl: …` on standard error: the one form every command uses.
func printFailure(_ failure: Any) {
    printError("rolloutctl: \(failure)")
}

func makeLogger(level: Logger.Level) -> Logger {
    var logger = Logger(label: "rolloutctl") { StreamLogHandler.standardError(label: $0) }
    if let text = ProcessInfo.processInfo.environment["LOG_LEVEL"], let parsed = Logger.Level(rawValue: text) {
        logger.logLevel = parsed
    } else {
        logger.logLevel = level
    }
    return logger
}

func parseDuration(_ text: String) -> Int? {
    if text == "0" { return 0 }
    return RolloutDuration(parsing: text)?.seconds
}
