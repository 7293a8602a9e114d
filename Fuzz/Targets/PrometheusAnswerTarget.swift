// fuzz-dictionary: json
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Metrics/PrometheusAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/HTTP/TextExcerpt.swift
@testable import RolloutAdapters
@testable import RolloutCore

/// Prometheus' answers (status 200): any body gives a value or "no data" with a reason, a value
/// is finite, and a reason stays short (excerpts, not whole bodies).
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
    }
}
