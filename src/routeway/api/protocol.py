"""uvicorn's httptools protocol, with its own 400s in routeway's error envelope.

A request uvicorn cannot parse (a bad request line, header or framing) never reaches the app: uvicorn
answers it itself, in plain text. Every error routeway sends is ``{"error": {"code", "message",
"metadata"}}``, so this subclass writes that body instead (same status, same closed connection).
"""

from __future__ import annotations

import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from routeway.errors import APIError


class HttpToolsJSONErrors(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        body = msgspec.json.encode(APIError(
            400, f"{msg} The request line, a header or the body's framing is not valid HTTP/1.1.").body())
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n", b"\r\n", body]
        self.transport.write(b"".join(head))
        self.transport.close()
