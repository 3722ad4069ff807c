"""The explorer's HTTP server: its page and one small JSON API, nothing else, bound to 127.0.0.1 by default.

Routes (exact paths; anything else is a 404, a method other than GET/HEAD/POST a 405; HEAD answers as GET does,
without the body):
  GET  /, /explorer.js, /explorer.css, /favicon.svg, /favicon.ico
                                        the page (files of `static/`, by name from a fixed table)
  GET  /api/info                        `Explorer.info`: the latent space's map, sliders, attributes, examples
  POST /api/decode {"z": [D numbers], "label": int | null}
                                        -> {"pixels": base64 of u8[H, W, C], "shape": [H, W, C]}
  POST /api/point {"index": int}        -> `Explorer.point(index)`: a map point's code, label, image and decoding

Every request body is checked before any compute (JSON, the fields, z's length, finite and |z_i| ≤ `Z_BOUND`,
the label's range); a bad one gets a 400 with {"error": message} and the server keeps serving.  The server
reads nothing from disk but its page and writes nothing anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import math
import os
import socket
import socketserver
import threading
import urllib.parse
from collections.abc import Callable

import numpy as np

Z_BOUND = 1e4  # |z_i| above this is refused: no code of a trained model is near it, and it keeps floats finite
MAX_BODY_BYTES = 1 << 20
DISCARD_BODY_BYTES = 16 << 20  # a longer body than MAX_BODY_BYTES is still read (and dropped) up to this size
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/explorer.js": ("explorer.js", "text/javascript; charset=utf-8"),
    "/explorer.css": ("explorer.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),  # where browsers and tools look without the page's <link>
}


class BadRequest(ValueError):
    """A request the API refuses; the message says what was wrong and what is expected."""


@dataclasses.dataclass(frozen=True)
class Explorer:
    """What the server serves, independent of how it was computed.

    info: JSON-able dict for GET /api/info (the page needs latent_dim, conditional, num_classes and the rest).
    decode: (z f32[D], label int | None) -> u8[H, W, C], the model's decoding of one code.
    point: index in [0, num_points) -> JSON-able dict for POST /api/point.
    latent_dim: D; num_classes: labels allowed are 0..num_classes-1; conditional: whether decode needs a label.
    num_points: the number of map points.
    """

    info: dict
    decode: Callable[[np.ndarray, int | None], np.ndarray]
    point: Callable[[int], dict]
    latent_dim: int
    num_classes: int
    conditional: bool
    num_points: int


def pixels_json(image_u8: np.ndarray) -> dict:
    """u8[H, W, C] -> {"pixels": base64 of its bytes in row-major order, "shape": [H, W, C]}."""
    image_u8 = np.ascontiguousarray(image_u8, np.uint8)
    return {"pixels": base64.b64encode(image_u8.tobytes()).decode("ascii"), "shape": list(image_u8.shape)}


def to_u8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] (any shape) -> u8 of the same shape, round(255 x)."""
    return np.round(np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _reject_constant(name: str):
    raise BadRequest(f"{name} is not a number JSON allows: send finite numbers")


def parse_json(body: bytes) -> dict:
    """The request body as a JSON object; BadRequest for anything else (NaN/Infinity literals included)."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except BadRequest:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BadRequest(f"the body is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(value).__name__}")
    return value


def _only_fields(request: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(request) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def _integer(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer in [{low}, {high}), got {json.dumps(value)[:40]}")
    if not low <= value < high:
        raise BadRequest(f"{name} must be in [{low}, {high}), got {value}")
    return value


def parse_decode(request: dict, latent_dim: int, num_classes: int, conditional: bool) -> tuple[np.ndarray, int | None]:
    """{"z": [D numbers], "label"?: int | null} -> (z f32[D], label or None); BadRequest naming the problem.

    z must have exactly `latent_dim` entries, each a finite number with |z_i| ≤ Z_BOUND.  The label must be in
    [0, num_classes); a conditional model needs one, an unconditional one ignores it.
    """
    _only_fields(request, ("z", "label"))
    z = request.get("z")
    if not isinstance(z, list):
        raise BadRequest(f"z must be a list of {latent_dim} numbers")
    if len(z) != latent_dim:
        raise BadRequest(f"z must have {latent_dim} entries (the latent size), got {len(z)}")
    for i, value in enumerate(z):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"z[{i}] must be a number, got {json.dumps(value)[:40]}")
        if isinstance(value, int) and abs(value) > Z_BOUND:
            raise BadRequest(f"z[{i}] = {value} is outside [-{Z_BOUND:g}, {Z_BOUND:g}]")
        if not math.isfinite(value):
            raise BadRequest(f"z[{i}] is not finite")
        if abs(value) > Z_BOUND:
            raise BadRequest(f"z[{i}] = {value:g} is outside [-{Z_BOUND:g}, {Z_BOUND:g}]")
    label = request.get("label")
    if label is None:
        if conditional:
            raise BadRequest(f"this model is conditional: send a label in [0, {num_classes})")
    else:
        label = _integer(label, "label", 0, num_classes)
    return np.asarray(z, np.float32), label


def parse_point(request: dict, num_points: int) -> int:
    """{"index": int} -> the index, in [0, num_points); BadRequest otherwise."""
    _only_fields(request, ("index",))
    return _integer(request.get("index"), "index", 0, num_points)


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `self.server.explorer`; see the module docstring."""

    protocol_version = "HTTP/1.1"  # keep-alive: the page sends a decode per slider movement
    # Headers and body leave in two writes; with Nagle's algorithm the body waits for the client's delayed ACK of
    # the headers (tens of ms per request on Linux), so it is off.
    disable_nagle_algorithm = True
    server_version = "gen_jax-explorer"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _path(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self._path()
        if path in PAGES:
            name, content_type = PAGES[path]
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                self._send(200, f.read(), content_type)
        elif path == "/api/info":
            self._json(200, self.server.explorer.info)
        elif path in ("/api/decode", "/api/point"):
            self._error(405, f"{path} takes POST with a JSON body")
        else:
            self._error(404, f"no such page: {path[:200]}; the explorer serves / and /api/*")

    do_HEAD = do_GET  # noqa: N815 - `_send` leaves the body out for HEAD

    def do_POST(self):  # noqa: N802
        path = self._path()
        try:
            body = self._read_body()
            if path == "/api/decode":
                explorer = self.server.explorer
                z, label = parse_decode(
                    parse_json(body), explorer.latent_dim, explorer.num_classes, explorer.conditional
                )
                self._json(200, pixels_json(explorer.decode(z, label)))
            elif path == "/api/point":
                self._json(
                    200, self.server.explorer.point(parse_point(parse_json(body), self.server.explorer.num_points))
                )
            else:
                self._error(404, f"no such API: {path[:200]}; POST goes to /api/decode or /api/point")
        except BadRequest as error:
            self._error(400, str(error))
        except Exception as error:  # noqa: BLE001 - a bug must not stop the server; the page shows the message
            self._error(500, f"{type(error).__name__}: {error}")

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise BadRequest("send a JSON body with a Content-Length header")
        length = int(length)
        if length > MAX_BODY_BYTES:
            if length <= DISCARD_BODY_BYTES:  # read and dropped, so that the client, still sending, gets the answer
                for start in range(0, length, 1 << 16):
                    self.rfile.read(min(1 << 16, length - start))
            else:
                self.close_connection = True  # the body is not read, so the connection cannot be reused
            raise BadRequest(f"the body has {length} bytes; at most {MAX_BODY_BYTES} are accepted")
        return self.rfile.read(length)

    def _refuse_method(self):
        self._error(405, f"{self.command} is not served: the explorer answers GET, HEAD and POST")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815


class ExplorerServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A threading HTTP server holding the `Explorer` it serves; bound on construction (an IPv6 `host` such as
    "::1" over IPv6), so that it can be bound before its `explorer` exists (None until set; serve after)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, explorer: Explorer | None, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self.explorer = explorer
        self.verbose = verbose
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve_in_thread(explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> ExplorerServer:
    """Starts an `ExplorerServer` on a daemon thread (port 0: any free port); stop it with `.shutdown()`."""
    server = ExplorerServer(explorer, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
