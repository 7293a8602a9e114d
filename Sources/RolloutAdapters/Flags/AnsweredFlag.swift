import RolloutCore

/// SPEC §6 [r3]: a flag service's answer must be about the flag asked for. An answer naming
/// another key (a proxy's cache keyed wrongly, a service that answers its default flag, a
/// misrouted request) is an error for that rollout, never read as its state: read as it, it
/// would make the rollout `overridden` for good and send a false notification.
///
/// Every store passes what it read through `answering(_:)` before returning it, so the
/// reconciler never sees a snapshot of another flag.
extension FlagSnapshot {
    /// This snapshot, when it is about `flag`; else `FlagStoreError.invalidResponse` naming both keys.
    /// `scrub` removes a secret the answered key may echo.
    func answering(_ flag: String, service: String, scrub: (String) -> String = { $0 }) throws -> FlagSnapshot {
        guard key == flag else {
            throw FlagStoreError.answerAboutAnotherFlag(asked: flag, answered: scrub(key), service: service)
        }
        return self
    }
}

extension FlagStoreError {
    /// The error for an answer about `answered` to a question about `asked`.
    static func answerAboutAnotherFlag(asked: String, answered: String, service: String) -> FlagStoreError {
        .invalidResponse(
            "asked \(service) for flag \(asked), it answered about flag \"\(TextExcerpt.excerpt(answered, limit: 80))\"; "
                + "the answer is not read as \(asked)'s state")
    }
}
