"""A small stand-in for Vault's Transit HTTP API (encrypt, decrypt, rewrap, rotate), served on
loopback so the real hvac client and phiguard's provider are exercised over HTTP."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class TransitState:
    def __init__(self) -> None:
        self.versions = [secrets.token_bytes(32)]
        self.token = "s." + secrets.token_hex(8)
        self.calls: list[str] = []

    def encrypt(self, plaintext: bytes) -> str:
        v = len(self.versions)
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self.versions[-1]).encrypt(nonce, plaintext, None)
        return f"vault:v{v}:" + base64.b64encode(nonce + ct).decode()

    def decrypt(self, ciphertext: str) -> bytes:
        _, v, body = ciphertext.split(":", 2)
        raw = base64.b64decode(body)
        return AESGCM(self.versions[int(v[1:]) - 1]).decrypt(raw[:12], raw[12:], None)


@contextmanager
def fake_vault() -> Iterator[tuple[str, TransitState]]:
    state = TransitState()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            if self.headers.get("X-Vault-Token") != state.token:
                self.send_response(403)
                self.end_headers()
                return
            body = json.loads(
                self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
            )
            parts = self.path.strip("/").split("/")  # v1 transit <op> <name> [rotate]
            op = parts[2]
            state.calls.append(op)
            if op == "encrypt":
                data = {"ciphertext": state.encrypt(base64.b64decode(body["plaintext"]))}
            elif op == "decrypt":
                data = {"plaintext": base64.b64encode(state.decrypt(body["ciphertext"])).decode()}
            elif op == "rewrap":
                data = {"ciphertext": state.encrypt(state.decrypt(body["ciphertext"]))}
            elif op == "keys" and parts[-1] == "rotate":
                state.versions.append(secrets.token_bytes(32))
                data = {}
            else:
                self.send_response(404)
                self.end_headers()
                return
            payload = json.dumps({"data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
