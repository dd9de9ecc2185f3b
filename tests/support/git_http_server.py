#!/usr/bin/env python3
"""A git server speaking git's smart HTTP with token authentication, for the
tests: `git http-backend` (git's own CGI program) behind a small HTTP server.

    git_http_server.py --root DIR --listen HOST:PORT

Every repository under DIR is served at /NAME. Tokens come from the
environment, never argv: GIT_SERVER_TOKEN may fetch and push,
GIT_SERVER_READ_TOKEN may only fetch. A request carries one as the password
of HTTP basic authentication (any user name), as git sends it. Without a
valid one the answer is 401 with a Basic challenge; a read-only token that
pushes gets 403.

Prints `listening on http://HOST:PORT` once it accepts connections, and one
line per request (`METHOD PATH STATUS user=...`) on stdout. Tokens are never
printed.
"""

import argparse
import base64
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WRITE = os.environ.get("GIT_SERVER_TOKEN", "")
READ = os.environ.get("GIT_SERVER_READ_TOKEN", "")


class Handler(BaseHTTPRequestHandler):
    root = "."
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the request line is logged by us
        pass

    def access(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except Exception:
            return None
        if WRITE and password == WRITE:
            return (user, "write")
        if READ and password == READ:
            return (user, "read")
        return None

    def answer(self, status, text, extra=()):
        body = text.encode()
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_git(self):
        path, _, query = self.path.partition("?")
        access = self.access()
        user = access[0] if access else "-"
        pushing = "git-receive-pack" in path or "service=git-receive-pack" in query
        if access is None:
            status = 401
            self.answer(401, "authentication required\n", [("WWW-Authenticate", 'Basic realm="git"')])
        elif pushing and access[1] != "write":
            status = 403
            self.answer(403, "this token may not push\n")
        else:
            status = self.cgi(path, query, user)
        print(f"{self.command} {path} {status} user={user} access={access[1] if access else '-'}", flush=True)

    def cgi(self, path, query, user):
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        else:
            body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": self.client_address[0],
            "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
        }
        for h in ("Content-Encoding", "Git-Protocol"):
            if self.headers.get(h):
                env["HTTP_" + h.upper().replace("-", "_")] = self.headers[h]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = out.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.stdout.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode(errors="replace").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k.strip(), v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if out.returncode != 0 and out.stderr:
            print(f"http-backend: {out.stderr.decode(errors='replace').strip()}", flush=True)
        return status

    def read_chunked(self):
        data = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    do_GET = handle_git
    do_POST = handle_git


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--listen", required=True)
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    Handler.root = os.path.abspath(args.root)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    h, p_ = server.server_address[:2]
    print(f"listening on http://{h}:{p_}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
