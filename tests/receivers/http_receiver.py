"""Webhook receiver for the output tests: records every POST as one JSON line.

With --hmac-secret it checks X-Sensor-Signature itself (Python's hmac, independent of the
sensor's code) and records the verdict. With --cert/--key it serves HTTPS; with --client-ca it
also requires a client certificate signed by that CA (mTLS).
"""
import argparse
import hashlib
import hmac
import http.server
import json
import ssl
import sys

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--out", required=True)
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--client-ca")
p.add_argument("--hmac-secret")
p.add_argument("--status", type=int, default=200)
args = p.parse_args()
out = open(args.out, "a", encoding="utf-8")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        rec = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        if args.hmac_secret:
            ts = self.headers.get("X-Sensor-Timestamp", "")
            want = "sha256=" + hmac.new(args.hmac_secret.encode(), ts.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
            rec["hmac_ok"] = hmac.compare_digest(want, self.headers.get("X-Sensor-Signature", ""))
        out.write(json.dumps(rec) + "\n")
        out.flush()
        reply = b"ok"
        self.send_response(args.status)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
if args.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("READY", flush=True)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
