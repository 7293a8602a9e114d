// fuzz-dictionary: json
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Metrics/PrometheusAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/HTTP/TextExcerpt.swift
@testable import RolloutAdapters
@testable import RolloutCore

/// Prometheus' answers (status 200): any body gives a value or "no data" with a reason, a value
/// is finite, and a reason stays short (excerpts, not whole bodies); a range answer's points are finite.
enum PrometheusAnswerTarget: FuzzTarget {
    static let name = "prometheus-answer"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        for status in [200, 422] {
            switch PrometheusAnswer.interpret(status: status, body: bytes) {
            case .value(let value):
                try Fuzz.require(status == 200 && value.isFinite, "value \(value) from HTTP \(status)")
            case .noData(let reason):
                try Fuzz.require(!reason.isEmpty && reason.count <= 400, "reason of \(reason.count) characters")
            }
        }
        // The range answers `serve` draws: every point kept is finite.
        if case .success(let series) = PrometheusAnswer.rangeSeries(status: 200, body: bytes) {
            for point in series.flatMap(\.points) {
                try Fuzz.require(
                    point.value.isFinite && point.time.timeIntervalSince1970.isFinite,
                    "point \(point.value) at \(point.time.timeIntervalSince1970)")
            }
        }
    }
}
