import Foundation
import RolloutCore

/// Prometheus' HTTP API answers, interpreted. Only Foundation and the core: the fuzz target
/// Fuzz/Targets/PrometheusAnswerTarget.swift compiles this file alone.
enum PrometheusAnswer {
    static func errorText(_ envelope: Envelope) -> String {
        let type = envelope.errorType ?? "error"
        if let message = envelope.error, !message.isEmpty {
            return "\(type): \(TextExcerpt.excerpt(message))"
        }
        return type
    }

    /// The envelope of every answer of Prometheus' HTTP API.
    struct Envelope: Decodable {
        var status: String
        var data: DataField?
        var errorType: String?
        var error: String?

        struct DataField: Decodable {
            var resultType: String
            var result: AdapterJSON
        }
    }

    /// Turns a (non-transient) HTTP answer, its status and body, into a result.
    static func interpret(status: Int, body: [UInt8]) -> MetricResult {
        let envelope: Envelope
        do {
            envelope = try JSONDecoder().decode(Envelope.self, from: Data(body))
        } catch {
            if status != 200 {
                return .noData(reason: "prometheus answered HTTP \(status)")
            }
            return .noData(reason: "malformed answer: \(describe(decodingError: error))")
        }
        guard envelope.status == "success" else {
            if envelope.status == "error" {
                let prefix = status == 200 ? "" : " (HTTP \(status))"
                return .noData(reason: "prometheus error\(prefix) \(errorText(envelope))")
            }
            return .noData(reason: "malformed answer: status \"\(TextExcerpt.excerpt(envelope.status, limit: 40))\"")
        }
        guard status == 200 else {
            return .noData(reason: "prometheus answered HTTP \(status)")
        }
        guard let data = envelope.data else {
            return .noData(reason: "malformed answer: no data field")
        }
        switch data.resultType {
        case "vector":
            guard case .array(let series) = data.result else {
                return .noData(reason: "malformed answer: a vector result that is not an array")
            }
            if series.isEmpty { return .noData(reason: "no data") }
            if series.count > 1 { return .noData(reason: "ambiguous: \(series.count) series") }
            guard case .object(let sample) = series[0], let value = sample["value"] else {
                return .noData(reason: "malformed answer: a sample without a value")
            }
            return sampleValue(value)
        case "scalar":
            return sampleValue(data.result)
        case "matrix", "string":
            return .noData(reason: "unsupported result type \(data.resultType): the query must give one instant value")
        default:
            let type = TextExcerpt.excerpt(data.resultType, limit: 40)
            return .noData(reason: "malformed answer: unknown result type \(type)")
        }
    }

    /// `[<unix time>, "<value>"]` → the value; NaN and ±Inf are no data.
    private static func sampleValue(_ pair: AdapterJSON) -> MetricResult {
        guard case .array(let items) = pair, items.count == 2, case .string(let text) = items[1] else {
            return .noData(reason: "malformed answer: a sample is not [time, \"value\"]")
        }
        switch text.lowercased() {
        case "nan": return .noData(reason: "value is NaN")
        case "+inf", "inf": return .noData(reason: "value is +Inf")
        case "-inf": return .noData(reason: "value is -Inf")
        default: break
        }
        guard let value = Double(text) else {
            return .noData(reason: "malformed answer: sample value \"\(TextExcerpt.excerpt(text, limit: 40))\" is not a number")
        }
        if value.isNaN { return .noData(reason: "value is NaN") }
        if value.isInfinite { return .noData(reason: value > 0 ? "value is +Inf" : "value is -Inf") }
        return .value(value)
    }

    private static func describe(decodingError error: Error) -> String {
        guard let decoding = error as? DecodingError else { return "not JSON" }
        switch decoding {
        case .keyNotFound(let key, _):
            return "missing field \(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "unexpected type at \(path.isEmpty ? "top level" : path)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "invalid value"
        @unknown default:
            return "not Prometheus' JSON"
        }
    }
}

/// Any JSON value, for answers whose shape depends on a field.
enum AdapterJSON: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([AdapterJSON])
    case object([String: AdapterJSON])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([AdapterJSON].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: AdapterJSON].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }
}
