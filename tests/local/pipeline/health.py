"""Shared by stages that serve: answer ``GET /health`` with 200 on 127.0.0.1:``port`` until killed."""

import http.server


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_health(port: int) -> None:
    http.server.HTTPServer(("127.0.0.1", port), _Handler).serve_forever()
