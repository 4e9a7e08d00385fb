"""A minimal WebSub hub for the tests, run as its own process: it records every publish
ping (one JSON line each) and can be told to answer errors.

    python tests/hub.py PORT LOGFILE [--fail-first N] [--status CODE] [--hang] [--endless] [--drip]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("log")
    parser.add_argument("--fail-first", type=int, default=0, help="answer 503 to the first N pings")
    parser.add_argument("--status", type=int, default=204, help="status for every other ping")
    parser.add_argument("--hang", action="store_true", help="record each ping, never answer")
    parser.add_argument("--endless", action="store_true", help="answer with a body that never ends")
    parser.add_argument("--drip", action="store_true", help="answer a byte every 0.5 s, forever")
    args = parser.parse_args()
    lock = threading.Lock()
    seen = {"count": 0}

    class Hub(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = parse_qs(self.rfile.read(length).decode())
            with lock:
                seen["count"] += 1
                status = 503 if seen["count"] <= args.fail_first else args.status
                with open(args.log, "a", encoding="utf-8") as log:
                    log.write(
                        json.dumps(
                            {
                                "path": self.path,
                                "form": form,
                                "status": status,
                                "ua": self.headers.get("User-Agent"),
                            }
                        )
                        + "\n"
                    )
            while args.hang:
                time.sleep(3600)
            if args.drip:  # a header that never ends (until the client goes away)
                self.wfile.write(b"HTTP/1.1 204 No Content\r\nX-Slow: ")
                while True:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.5)
            self.send_response(200 if args.endless else status)  # (a 204 has no body)
            if args.endless:
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                while True:  # (until the client goes away)
                    self.wfile.write(b"x" * 65536)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Hub).serve_forever()


if __name__ == "__main__":
    main()
