"""A service stage: answers ``GET /health`` with 200 on 127.0.0.1:$BODYWORK_SERVICE_PORT until stopped.

Usage: ``python serve.py NAME [--exit-early]``; ``--exit-early`` exits with code 3 before listening.
"""

import http.server
import json
import os
import sys

from stage_record import record

name = sys.argv[1]
record(name, event="start")
if "--exit-early" in sys.argv:
    print("exiting before listening", flush=True)
    sys.exit(3)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/health":
            self.send_error(404)
            return
        body = json.dumps({"stage": os.environ.get("BODYWORK_STAGE", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path}", flush=True)


server = http.server.HTTPServer(("127.0.0.1", int(os.environ["BODYWORK_SERVICE_PORT"])), Handler)
print(f"listening on {server.server_address}", flush=True)
server.serve_forever()
