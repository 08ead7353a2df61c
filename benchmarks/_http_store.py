"""A directory served over HTTP on a loopback port, counting the body bytes it sends:
bench_select reads a Zarr array through it (as a user reads one from a web server) and
asks it how many bytes a fit read. Run as a separate process (``python _http_store.py
DIR``) so that serving does not share the benchmark's interpreter lock.

    GET /__bytes__         the body bytes sent so far, as a decimal number
    GET /__bytes__?reset   the same, then restart the count at 0
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files like ``python -m http.server``, adds their sizes to a shared count."""

    count = 0
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if self.path.startswith("/__bytes__"):
            with CountingHandler.lock:
                body = str(CountingHandler.count).encode()
                if self.path.endswith("?reset"):
                    CountingHandler.count = 0
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def copyfile(self, source, outputfile):
        n = 0
        while chunk := source.read(1 << 20):
            outputfile.write(chunk)
            n += len(chunk)
        with CountingHandler.lock:
            CountingHandler.count += n

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(directory: str):
    """Serve ``directory`` on 127.0.0.1 in a child process; yields (base URL, counter)
    where counter(reset=False) returns the bytes sent so far. Stops the server on exit."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), directory, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def counter(reset: bool = False) -> int:
        with urllib.request.urlopen(base + "/__bytes__" + ("?reset" if reset else "")) as r:
            return int(r.read())

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                counter()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the HTTP store did not start") from None
                time.sleep(0.05)
        yield base, counter
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str]) -> None:
    directory, port = argv[0], int(argv[1])
    handler = lambda *a, **kw: CountingHandler(*a, directory=directory, **kw)  # noqa: E731
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
