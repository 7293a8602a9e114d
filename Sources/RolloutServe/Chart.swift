import Foundation
import RolloutAdapters

/// A panel's series laid out for an SVG drawn on the server: coordinates in a fixed view box, axis labels and
/// a legend. Pure geometry; the template writes the elements (and escapes every text).
struct Chart: Sendable {
    static let width = 640.0
    static let height = 220.0
    static let left = 56.0
    static let right = 12.0
    static let top = 12.0
    static let bottom = 28.0

    struct Line: Sendable {
        var label: String
        var points: String
        var count: Int
        var colorIndex: Int
    }

    var lines: [Line]
    var yMin: Double
    var yMax: Double
    var start: Date
    var end: Date

    var pointCount: Int { lines.reduce(0) { $0 + $1.count } }

    /// Scales every series into the plot area; a flat series gets a band around its value.
    init(series: [RangeSeries], start: Date, end: Date) {
        let values = series.flatMap { $0.points.map(\.value) }
        var low = values.min() ?? 0
        var high = values.max() ?? 1
        if low > 0 && low < high * 0.5 { low = 0 }  // ratios and counts read best from zero
        if high - low < 1e-12 {
            let pad = max(abs(high) * 0.1, 1e-6)
            low -= pad
            high += pad
        }
        self.yMin = low
        self.yMax = high
        self.start = start
        self.end = end
        let span = max(1, end.timeIntervalSince(start))
        let plotWidth = Self.width - Self.left - Self.right
        let plotHeight = Self.height - Self.top - Self.bottom
        lines = series.enumerated().map { index, series in
            let points = series.points.map { point -> String in
                let x = Self.left + plotWidth * point.time.timeIntervalSince(start) / span
                let y = Self.top + plotHeight * (1 - (point.value - low) / (high - low))
                return Self.coordinate(x) + "," + Self.coordinate(y)
            }
            return Line(
                label: Self.label(series.labels), points: points.joined(separator: " "),
                count: points.count, colorIndex: index % 6)
        }
    }

    /// `variant=treatment`, or `series` when a series has no labels.
    static func label(_ labels: [String: String]) -> String {
        let text = labels.filter { $0.key != "__name__" }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        return text.isEmpty ? "series" : text
    }

    static func coordinate(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    /// Axis numbers: up to 4 significant digits, a percent for ratio panels.
    static func axisValue(_ value: Double, unit: String?) -> String {
        if unit == "ratio" { return String(format: "%.2f%%", value * 100) }
        if abs(value) >= 1000 { return String(format: "%.0f", value) }
        return String(format: "%.4g", value)
    }
}
