/// Reads repository files for decoding, reporting size, kind, encoding and JSON problems.
struct FileReader {
    let read: (TreeFile) throws -> [UInt8]

    /// Reads a text file, reporting size, kind and encoding problems.
    func text(_ file: TreeFile, _ diagnostics: inout [Diagnostic]) -> [UInt8]? {
        switch file.kind {
        case .symlink:
            diagnostics.append(
                Diagnostic(path: file.path, message: "is a symbolic link; rolloutctl reads only regular files"))
            return nil
        case .submodule:
            diagnostics.append(
                Diagnostic(path: file.path, message: "is a submodule; rolloutctl reads only regular files"))
            return nil
        case .blob:
            break
        }
        if file.size > RepositoryLoader.maxBlobSize {
            diagnostics.append(Diagnostic(path: file.path, message: "is \(file.size) bytes, over the 1 MiB limit"))
            return nil
        }
        let bytes: [UInt8]
        do {
            bytes = try read(file)
        } catch {
            diagnostics.append(Diagnostic(path: file.path, message: "cannot be read: \(error)"))
            return nil
        }
        if let position = RepositoryLoader.firstInvalidUTF8(bytes) {
            diagnostics.append(
                Diagnostic(
                    path: file.path, line: position.line, column: position.column,
                    message: "is not valid UTF-8 text"))
            return nil
        }
        return bytes
    }

    func json(_ file: TreeFile, _ diagnostics: inout [Diagnostic]) -> JSONValue? {
        guard let bytes = text(file, &diagnostics) else { return nil }
        do {
            return try JSONParser.parse(bytes)
        } catch {
            diagnostics.append(
                Diagnostic(
                    path: file.path, line: error.position.line, column: error.position.column,
                    message: error.message))
            return nil
        }
    }
}
