import Foundation
import RolloutCore

/// Prometheus' HTTP API answers, interpreted. Only Foundation and the core: the fuzz target
/// Fuzz/Targets/PrometheusAnswerTarget.swift compiles this file alone.
enum PrometheusAnswer {
    static func errorText(_ envelope: Envelope) -> String {
        let type = TextExcerpt.excerpt(envelope.errorType ?? "error", limit: 40)
        if let message = envelope.error, !message.isEmpty {
            return "\(type): \(TextExcerpt.excerpt(message))"
        }
        return type
    }

    /// What is wrong with an answer, in a few words.
    struct Malformed: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The envelope of every answer of Prometheus' HTTP API, read with the core's strict parser
    /// (a key twice is not JSON: which value Prometheus meant would be a guess).
    struct Envelope {
        var status: String
        /// `data.resultType` and `data.result`, when there is a `data` object.
        var data: (resultType: String, result: JSONValue)?
        var errorType: String?
        var error: String?

        /// The envelope, or what is wrong with it: `not JSON`, `missing field status`,
        /// `unexpected type at data.resultType`.
        static func read(_ body: [UInt8]) -> Result<Envelope, Malformed> {
            guard let root = try? JSONParser.parse(body) else { return .failure(Malformed("not JSON")) }
            guard case .object(let members) = root.kind else {
                return .failure(Malformed("unexpected type at top level"))
            }
            func field(_ name: String, in members: [JSONValue.Member]) -> JSONValue? {
                members.first { $0.key == name }?.value
            }
            func optionalText(_ name: String) -> Result<String?, Malformed> {
                switch field(name, in: members)?.kind {
                case nil, .null?: return .success(nil)
                case .string(let text)?: return .success(text)
                default: return .failure(Malformed("unexpected type at \(name)"))
                }
            }
            guard let statusValue = field("status", in: members) else {
                return .failure(Malformed("missing field status"))
            }
            guard case .string(let status) = statusValue.kind else {
                return .failure(Malformed("unexpected type at status"))
            }
            var envelope = Envelope(status: status)
            switch (optionalText("errorType"), optionalText("error")) {
            case (.success(let type), .success(let message)):
                envelope.errorType = type
                envelope.error = message
            case (.failure(let malformed), _), (_, .failure(let malformed)):
                return .failure(malformed)
            }
            switch field("data", in: members)?.kind {
            case nil, .null?:
                break
            case .object(let data)?:
                guard let typeValue = field("resultType", in: data) else {
                    return .failure(Malformed("missing field resultType"))
                }
                guard case .string(let type) = typeValue.kind else {
                    return .failure(Malformed("unexpected type at data.resultType"))
                }
                guard let result = field("result", in: data) else { return .failure(Malformed("missing field result")) }
                envelope.data = (type, result)
            default:
                return .failure(Malformed("unexpected type at data"))
            }
            return .success(envelope)
        }
    }

    /// Turns a (non-transient) HTTP answer, its status and body, into a result.
    static func interpret(status: Int, body: [UInt8]) -> MetricResult {
        let envelope: Envelope
        switch Envelope.read(body) {
        case .success(let read):
            envelope = read
        case .failure(let malformed):
            if status != 200 {
                return .noData(reason: "prometheus answered HTTP \(status)")
            }
            return .noData(reason: "malformed answer: \(malformed.reason)")
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
            guard case .array(let series) = data.result.kind else {
                return .noData(reason: "malformed answer: a vector result that is not an array")
            }
            if series.isEmpty { return .noData(reason: "no data") }
            if series.count > 1 { return .noData(reason: "ambiguous: \(series.count) series") }
            guard case .object(let sample) = series[0].kind, let value = sample.first(where: { $0.key == "value" })
            else {
                return .noData(reason: "malformed answer: a sample without a value")
            }
            return sampleValue(value.value)
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
    private static func sampleValue(_ pair: JSONValue) -> MetricResult {
        guard case .array(let items) = pair.kind, items.count == 2, case .string(let text) = items[1].kind else {
            return .noData(reason: "malformed answer: a sample is not [time, \"value\"]")
        }
        switch text.lowercased() {
        case "nan": return .noData(reason: "value is NaN")
        case "+inf", "inf": return .noData(reason: "value is +Inf")
        case "-inf": return .noData(reason: "value is -Inf")
        default: break
        }
        guard let value = Double(text) else {
            let excerpt = TextExcerpt.excerpt(text, limit: 40)
            return .noData(reason: "malformed answer: sample value \"\(excerpt)\" is not a number")
        }
        if value.isNaN { return .noData(reason: "value is NaN") }
        if value.isInfinite { return .noData(reason: value > 0 ? "value is +Inf" : "value is -Inf") }
        return .value(value)
    }

    /// Reads a `query_range` answer (`resultType: matrix`); a point whose time or value is not a
    /// finite number is left out.
    static func rangeSeries(status: Int, body: [UInt8]) -> Result<[RangeSeries], RangeQueryFailure> {
        guard case .success(let envelope) = Envelope.read(body) else {
            let reason = status == 200 ? "malformed answer from prometheus" : "prometheus answered HTTP \(status)"
            return .failure(RangeQueryFailure(reason: reason))
        }
        guard envelope.status == "success", let data = envelope.data else {
            let detail = [envelope.errorType, envelope.error].compactMap { $0 }.joined(separator: ": ")
            return .failure(RangeQueryFailure(reason: "prometheus error \(TextExcerpt.excerpt(detail))"))
        }
        guard data.resultType == "matrix" else {
            let type = TextExcerpt.excerpt(data.resultType, limit: 40)
            return .failure(RangeQueryFailure(reason: "expected a matrix, prometheus sent \(type)"))
        }
        guard case .array(let items) = data.result.kind else {
            return .failure(RangeQueryFailure(reason: "malformed answer from prometheus"))
        }
        var series: [RangeSeries] = []
        for item in items {
            guard case .object(let fields) = item.kind,
                case .object(let metric)? = fields.first(where: { $0.key == "metric" })?.value.kind,
                case .array(let values)? = fields.first(where: { $0.key == "values" })?.value.kind
            else { return .failure(RangeQueryFailure(reason: "malformed answer from prometheus")) }
            var labels: [String: String] = [:]
            for label in metric {
                guard case .string(let text) = label.value.kind else {
                    return .failure(RangeQueryFailure(reason: "malformed answer from prometheus"))
                }
                labels[label.key] = text
            }
            let points = values.compactMap { pair -> RangePoint? in
                guard case .array(let parts) = pair.kind, parts.count == 2, case .number(let time) = parts[0].kind,
                    case .string(let text) = parts[1].kind, let value = Double(text), value.isFinite
                else { return nil }
                return RangePoint(time: Date(timeIntervalSince1970: time), value: value)
            }
            series.append(RangeSeries(labels: labels, points: points))
        }
        return .success(series)
    }
}

/// One series of a range query: its labels and its points, oldest first.
public struct RangeSeries: Equatable, Sendable {
    public var labels: [String: String]
    public var points: [RangePoint]

    public init(labels: [String: String], points: [RangePoint]) {
        self.labels = labels
        self.points = points
    }
}

/// One sample of a range series. NaN and infinite samples are dropped when read.
public struct RangePoint: Equatable, Sendable {
    public var time: Date
    public var value: Double

    public init(time: Date, value: Double) {
        self.time = time
        self.value = value
    }
}

/// Why a range query has nothing to draw.
public struct RangeQueryFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }

    public init(reason: String) {
        self.reason = reason
    }
}
