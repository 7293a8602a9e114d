import HTTPTypes
import Hummingbird
import NIOCore

/// A response with a fixed body and content type.
struct Page: ResponseGenerator {
    var status: HTTPResponse.Status = .ok
    var contentType: String
    var body: String

    static func html(_ body: String, status: HTTPResponse.Status = .ok) -> Page {
        Page(status: status, contentType: "text/html; charset=utf-8", body: body)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
