/// Naming rules shared by every file format.
public enum Names {
    /// `^[a-z0-9][a-z0-9-]{0,62}$`: rollouts, phases (SPEC §2), and also roles and health sets.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func allowed(_ b: UInt8, first: Bool) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || (!first && b == UInt8(ascii: "-"))
        }
        return bytes.enumerated().allSatisfy { allowed($0.element, first: $0.offset == 0) }
    }

    public static let patternDescription = "^[a-z0-9][a-z0-9-]{0,62}$"

    /// The one API version this build understands.
    public static let apiVersion = "rolloutctl/v1"

    /// Checks `apiVersion`: `rolloutctl/v1` (or a `v1alpha…`/`v1beta…` form) is accepted; another
    /// major version is an error that says which one this build reads.
    public static func checkAPIVersion(_ reader: ObjectReader) {
        guard let (text, position) = reader.string("apiVersion") else { return }
        let prefix = "rolloutctl/v"
        guard text.hasPrefix(prefix) else {
            reader.sink.report(
                "apiVersion \"\(text)\" is not a rolloutctl API version; use \"\(apiVersion)\"", at: position)
            return
        }
        let major = text.dropFirst(prefix.count).prefix(while: { $0.isNumber })
        guard let number = Int(major) else {
            reader.sink.report("apiVersion \"\(text)\" has no major version; use \"\(apiVersion)\"", at: position)
            return
        }
        if number != 1 {
            reader.sink.report(
                "unknown apiVersion major \"\(text)\": this rolloutctl reads \"\(apiVersion)\"", at: position)
        }
    }
}
