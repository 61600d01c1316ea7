#!/usr/bin/python3
"""A small loopback service for the baseline tests and corpus.

Usage: webapp.py ROOT PORT

Serves on 127.0.0.1:PORT, with a backend on PORT+1 in the same process. Normal routes: /page
reads ROOT/index.html, /report runs `uname -a`, /data asks the backend. Every request is
appended to ROOT/access.log. The /x/ routes do what the service never does while learning:
/x/shell spawns a shell, /x/connect?port=N connects to a new port, /x/write?path=P writes a
file; each answers what happened ("refused: ..." when a profile stopped it).
"""
import http.server
import os
import socket
import subprocess
import sys
import threading
import urllib.parse

ROOT, PORT = sys.argv[1], int(sys.argv[2])
BACKEND = PORT + 1


def backend():
    srv = socket.create_server(("127.0.0.1", BACKEND))
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.recv(100)
            conn.sendall(b"42\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        body = b"ok\n"
        if url.path == "/report":
            body = subprocess.run(["/usr/bin/uname", "-a"], capture_output=True).stdout
        elif url.path == "/data":
            with socket.create_connection(("127.0.0.1", BACKEND), timeout=2) as s:
                s.sendall(b"q\n")
                body = s.recv(100)
        elif url.path == "/page":
            with open(os.path.join(ROOT, "index.html"), "rb") as f:
                body = f.read()
        elif url.path == "/x/shell":
            try:
                body = subprocess.run(["/bin/sh", "-c", "echo hello"], capture_output=True).stdout
            except OSError as e:
                body = f"refused: {e}\n".encode()
        elif url.path == "/x/connect":
            try:
                socket.create_connection(("127.0.0.1", int(query["port"][0])), timeout=1).close()
                body = b"connected\n"
            except OSError as e:
                body = f"refused: {e}\n".encode()
        elif url.path == "/x/write":
            try:
                with open(query["path"][0], "w") as f:
                    f.write("x")
                body = b"written\n"
            except OSError as e:
                body = f"refused: {e}\n".encode()
        with open(os.path.join(ROOT, "access.log"), "a") as log:
            log.write(url.path + "\n")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


with open(os.path.join(ROOT, "index.html"), "w") as f:
    f.write("<h1>hello</h1>\n")
threading.Thread(target=backend, daemon=True).start()
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
