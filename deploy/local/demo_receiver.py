#!/usr/bin/env python3
"""A demo HTTPS webhook receiver for `make run`: prints every delivery it gets and answers 204.

usage: demo_receiver.py PORT CERT_FILE KEY_FILE

It prints the Standard Webhooks headers and the body; `make run` prints the curl commands that make it
receive something. Not part of the product: the product is bin/producer-api and bin/dispatcher.
"""
import http.server
import json
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            shown = json.dumps(json.loads(body), indent=2)
        except ValueError:
            shown = body.decode("utf-8", "replace")
        print(f"\n=== delivery to {self.path}", flush=True)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "user-agent"):
            print(f"{name}: {self.headers.get(name)}", flush=True)
        print(shown, flush=True)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"demo receiver listening on https://127.0.0.1:{port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
