#!/usr/bin/env python3
"""permessage-deflate interop between syncws and Python's `websockets` (sync API).

    interop_deflate.py client URL   # websockets clients against a syncws echo server
    interop_deflate.py servers      # websockets echo servers for the syncws client

client: for each extension setting below, connects to the syncws echo server at URL through a
byte-counting relay, checks that permessage-deflate was negotiated, sends every message of
MESSAGES (whole and fragmented), checks each echo byte for byte, and checks that both
directions carried far fewer bytes than the payloads (so compression really ran both ways).
Exits non-zero on the first failure.

servers: starts one echo server per setting on 127.0.0.1 (port 0), prints `name=ws://...` per
line, then a line `ready`, and serves until stdin closes. Each connection first receives one
text message naming what was negotiated (`negotiated: ...`), then its messages echoed.
"""

import os
import random
import socket
import sys
import threading

from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.sync.client import connect
from websockets.sync.server import serve

MAX = 16 << 20


def json_like(n):
    parts, i = [], 0
    while sum(len(p) for p in parts) < n:
        parts.append('{"id":%d,"user":"user%d","active":%s,"tags":["a","b"]},'
                     % (i, i % 17, "true" if i % 3 == 0 else "false"))
        i += 1
    return "".join(parts)[:n]


def messages():
    rnd = random.Random(7)
    text = "validé ✓ 🎉 ünïcödé "
    return [
        "",
        "hi",
        "x" * 63,
        json_like(1 << 10),
        json_like(100 << 10),
        (text * (1 << 20))[: 1 << 20],
        b"",
        bytes(rnd.getrandbits(8) for _ in range(1 << 10)),
        bytes(1 << 20),
        json_like(300 << 10).encode(),
    ]


CLIENT_SETTINGS = {
    "default": None,  # compression="deflate": websockets' own defaults
    "no context takeover": [ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True)],
    "9-bit windows": [ClientPerMessageDeflateFactory(
        server_max_window_bits=9, client_max_window_bits=9)],
    "8-bit server window": [ClientPerMessageDeflateFactory(
        server_max_window_bits=8, client_max_window_bits=True)],
    "plain offer": [ClientPerMessageDeflateFactory(client_max_window_bits=None)],
}

SERVER_SETTINGS = {
    "default": None,
    "no context takeover": [ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True)],
    "10-bit windows": [ServerPerMessageDeflateFactory(
        server_max_window_bits=10, client_max_window_bits=10)],
    "require client window": [ServerPerMessageDeflateFactory(
        client_max_window_bits=9, require_client_max_window_bits=True)],
}


class Relay:
    """Forwards one TCP connection at a time to a target, counting bytes each way."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.up = self.down = 0

    def run_once(self):
        def accept():
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            pumps = [threading.Thread(target=self.pump, args=(client, server, "up")),
                     threading.Thread(target=self.pump, args=(server, client, "down"))]
            for p in pumps:
                p.start()
            for p in pumps:
                p.join()
            client.close()
            server.close()
        self.up = self.down = 0
        self.thread = threading.Thread(target=accept)
        self.thread.start()

    def pump(self, src, dst, direction):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            setattr(self, direction, getattr(self, direction) + len(data))
            dst.sendall(data)


def fail(what):
    print("FAIL: " + what, flush=True)
    sys.exit(1)


def run_client(url):
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    relay = Relay(host, int(port))
    msgs = messages()
    # Payload bytes each way: every message whole and fragmented.
    payload = 2 * sum(len(m.encode() if isinstance(m, str) else m) for m in msgs)
    for name, extensions in CLIENT_SETTINGS.items():
        relay.run_once()
        kwargs = {"compression": "deflate"} if extensions is None else {
            "extensions": extensions, "compression": None}
        with connect("ws://127.0.0.1:%d/" % relay.port, max_size=MAX, **kwargs) as ws:
            answer = ws.response.headers.get("Sec-WebSocket-Extensions")
            agreed = ws.protocol.extensions
            if not answer or not agreed:
                fail("%s: compression not negotiated (answer %r)" % (name, answer))
            for m in msgs:
                ws.send(m)
                if ws.recv() != m:
                    fail("%s: echo of a %d-byte %s differs" % (name, len(m), type(m).__name__))
                # the same message in three fragments
                third = max(len(m) // 3, 1)
                ws.send([m[:third], m[third:2 * third], m[2 * third:]])
                if ws.recv() != m:
                    fail("%s: fragmented echo of %d bytes differs" % (name, len(m)))
        relay.thread.join()
        print("ok  %-20s %-72s up %7d, down %7d bytes for %d each way"
              % (name, answer, relay.up, relay.down, payload), flush=True)
        # Only the 1 KiB of random bytes does not compress; everything else does, a lot.
        if relay.up > payload // 4 or relay.down > payload // 4:
            fail("%s: %d up, %d down on the wire for %d payload bytes: not compressed"
                 % (name, relay.up, relay.down, payload))


def run_servers():
    def handler(ws):
        offer = ws.request.headers.get("Sec-WebSocket-Extensions")
        ws.send("negotiated: %r for offer %r" % (ws.protocol.extensions, offer))
        for msg in ws:
            ws.send(msg)

    servers = []
    for name, extensions in SERVER_SETTINGS.items():
        kwargs = {"compression": "deflate"} if extensions is None else {
            "extensions": extensions, "compression": None}
        server = serve(handler, "127.0.0.1", 0, max_size=MAX, **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        print("%s=ws://127.0.0.1:%d/" % (name, server.socket.getsockname()[1]), flush=True)
    print("ready", flush=True)
    sys.stdin.read()
    for server in servers:
        server.shutdown()


def main(argv):
    if len(argv) == 3 and argv[1] == "client":
        run_client(argv[2])
    elif len(argv) == 2 and argv[1] == "servers":
        run_servers()
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
