import Foundation
import RolloutTestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `rolloutctl serve` as a process on 127.0.0.1 (port 0: the kernel picks one, read from its first line).
final class ServeProcess: @unchecked Sendable {
    let running: RunningProcess
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(running: RunningProcess, port: Int) {
        self.running = running
        self.port = port
    }

    static func start(_ arguments: [String], environment: [String: String] = ["ADMIN_TOKEN": CLIWorld.token])
        async throws -> ServeProcess
    {
        let running = try RunningProcess(
            Binary.path, ["serve", "--listen", "127.0.0.1:0"] + arguments,
            environment: environment)
        let deadline = Date().addingTimeInterval(60)
        let marker = "listening on http://127.0.0.1:"
        while Date() < deadline {
            let out = running.stdoutSoFar
            if let range = out.range(of: marker) {
                let digits = out[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits) { return ServeProcess(running: running, port: port) }
            }
            if !running.process.isRunning {
                let result = await running.wait()
                throw FixtureError("serve exited \(result.status): \(result.all)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        running.process.terminate()
        throw FixtureError("serve did not start within 60s: \(running.stdoutSoFar)")
    }

    /// SIGTERM, then what it printed.
    func stop() async -> ProcessResult {
        if running.process.isRunning { running.process.terminate() }
        return await running.wait()
    }

    func request(_ path: String, method: String = "GET") async throws -> (status: Int, body: String, type: String) {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        request.timeoutInterval = 60
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return (
            http.statusCode, String(decoding: data, as: UTF8.self),
            http.value(forHTTPHeaderField: "Content-Type") ?? ""
        )
    }
}

/// Debian's `chromium`, headless, as CI installs it.
enum Chromium {
    static var path: String? {
        for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return nil
    }

    static func arguments(profile: String) -> [String] {
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--hide-scrollbars", "--user-data-dir=\(profile)",
        ]
    }

    /// The DOM after the page loaded (`--dump-dom`), laid out in a window `width` pixels wide when given.
    static func dumpDOM(_ url: String, profile: String, width: Int? = nil) async throws -> String {
        let size = width.map { ["--window-size=\($0),900"] } ?? []
        let result = try await RunningProcess(
            path!, arguments(profile: profile) + size + ["--dump-dom", url],
            environment: ["HOME": profile]
        ).wait()
        guard result.status == 0 else {
            throw FixtureError("chromium --dump-dom exited \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    /// A PNG of the page at `width`×`height` (`--screenshot`).
    static func screenshot(_ url: String, to file: String, width: Int, height: Int, profile: String) async throws {
        let result = try await RunningProcess(
            path!,
            arguments(profile: profile)
                + ["--screenshot=\(file)", "--window-size=\(width),\(height)", url], environment: ["HOME": profile]
        ).wait()
        guard result.status == 0 else {
            throw FixtureError("chromium --screenshot exited \(result.status): \(result.stderr)")
        }
    }
}

/// Counts occurrences of `needle` in `text`.
func occurrences(of needle: String, in text: String) -> Int {
    text.components(separatedBy: needle).count - 1
}
