import Foundation
import RolloutCore
import RolloutKit

/// One check's backtest laid out for an SVG drawn on the server (SPEC §6.2, §9): the series (at most
/// `maxPoints` points: each point the worst value of its steps, so that a one-step breach stays visible; a
/// step without data breaks the line), the threshold lines and the breach episodes as shaded bands, all from
/// the figures `rolloutctl backtest` prints. Pure geometry; the template writes the elements.
struct BacktestChart: Sendable {
    static let width = 640.0
    static let height = 170.0
    static let left = 56.0
    static let right = 12.0
    static let top = 10.0
    static let bottom = 24.0
    static let maxPoints = 600

    struct Band: Sendable {
        var x: Double
        var width: Double
    }

    struct Threshold: Sendable {
        var y: Double
        var label: String
    }

    var lines: [String]
    var pointCount: Int
    var thresholds: [Threshold]
    var episodes: [Band]
    var yMin: Double
    var yMax: Double

    static var plotWidth: Double { width - left - right }
    static var plotHeight: Double { height - top - bottom }

    init(row: BacktestRow, window: Backtest.Window) {
        let count = row.results.count
        let buckets = max(1, min(count, Self.maxPoints))
        let worstIsHigh = row.check.max != nil
        var bucketValues: [Double?] = []
        bucketValues.reserveCapacity(buckets)
        for bucket in 0..<buckets {
            let from = bucket * count / buckets
            let to = max(from + 1, (bucket + 1) * count / buckets)
            var worst: Double?
            for index in from..<min(to, count) {
                guard case .value(let value) = row.results[index] else { continue }
                if let current = worst {
                    worst = worstIsHigh ? Swift.max(current, value) : Swift.min(current, value)
                } else {
                    worst = value
                }
            }
            bucketValues.append(worst)
        }
        let limits = [row.check.min, row.check.max].compactMap { $0 }
        let all = bucketValues.compactMap { $0 } + limits
        var low = all.min() ?? 0
        var high = all.max() ?? 1
        if high - low < 1e-12 {
            let pad = Swift.max(abs(high) * 0.1, 1e-6)
            low -= pad
            high += pad
        } else {
            let pad = (high - low) * 0.05
            low -= pad
            high += pad
        }
        yMin = low
        yMax = high
        func y(_ value: Double) -> Double { Self.top + Self.plotHeight * (1 - (value - low) / (high - low)) }
        func x(_ fraction: Double) -> Double { Self.left + Self.plotWidth * Swift.min(1, Swift.max(0, fraction)) }
        var lines: [String] = []
        var current: [String] = []
        var points = 0
        for (bucket, value) in bucketValues.enumerated() {
            guard let value else {
                if !current.isEmpty { lines.append(current.joined(separator: " ")) }
                current = []
                continue
            }
            let px = x((Double(bucket) + 0.5) / Double(buckets))
            current.append(Chart.coordinate(px) + "," + Chart.coordinate(y(value)))
            points += 1
        }
        if !current.isEmpty { lines.append(current.joined(separator: " ")) }
        self.lines = lines
        pointCount = points
        thresholds = [row.check.min.map { ("min", $0) }, row.check.max.map { ("max", $0) }].compactMap { $0 }.map {
            Threshold(y: y($0.1), label: "\($0.0) \(formatNumber($0.1))")
        }
        let span = Double(Swift.max(1, count))
        episodes = row.figures.episodes.map { episode in
            let first = window.index(of: episode.start) ?? 0
            let from = x(Double(first) / span)
            let to = x(Double(first + episode.steps) / span)
            return Band(x: from, width: Swift.max(1, to - from))
        }
    }
}
