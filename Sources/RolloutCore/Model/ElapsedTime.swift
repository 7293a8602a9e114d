import Foundation

/// Whole seconds from `start` to `end`, for bake times and health windows. The times come from the
/// state database and `--now`, so they are input: a difference that is not finite or does not fit
/// an Int (a corrupt row) is clamped instead of trapping in `Int(_:)`.
public func elapsedSeconds(from start: Date, to end: Date) -> Int {
    let seconds = end.timeIntervalSince(start)
    guard seconds.isFinite else { return 0 }
    let limit = Double(RolloutDuration.maxSeconds) * 10
    return Int(min(max(seconds, -limit), limit))
}
