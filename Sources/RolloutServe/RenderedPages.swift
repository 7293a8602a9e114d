import Foundation

/// Pages and documents rendered from one report generation: a page depends only on the report (and the
/// server's last reconcile, which makes a new generation), so requests within `--max-age` cost no rendering.
final class RenderedPages: @unchecked Sendable {
    private let lock = NSLock()
    private var generation = -1
    private var pages: [String: String] = [:]

    func page(_ key: String, generation: Int, render: () -> String) -> String {
        lock.lock()
        if generation == self.generation, let page = pages[key] {
            lock.unlock()
            return page
        }
        lock.unlock()
        let page = render()
        lock.lock()
        if generation > self.generation {
            self.generation = generation
            pages = [:]
        }
        if generation == self.generation { pages[key] = page }
        lock.unlock()
        return page
    }
}
