#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol against the chat example.

Usage: browser_cdp.py CHAT_PORT DEVTOOLS_PORT TOKEN [PORT_ONE PORT_TWO]

Opens two chat pages (ann, bob) and one without the token, checks what each page shows. Given
PORT_ONE and PORT_TWO, two chat instances sharing their room through Redis, also opens a page on
each (cat on one, dan on two) that must see the other's join and typed messages. Prints a
PASS/FAIL table and exits 1 if any check failed. Standard library only: a minimal WebSocket
client (RFC 6455, client side) talks to the browser's DevTools endpoint on loopback.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request

DEADLINE = 20.0  # seconds any single wait may take


class DevTools:
    """One WebSocket connection to the browser target; calls routed by id, events ignored."""

    def __init__(self, url):
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://"):].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv_some()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"devtools refused the upgrade: {head!r}")
        self.next_id = 0

    def _recv_some(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("devtools connection closed")
        return chunk

    def _read(self, n):
        while len(self.buf) < n:
            self.buf += self._recv_some()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_text(self, text):
        payload = text.encode()
        header = bytes([0x81])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _recv_message(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack(">Q", self._read(8))
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise RuntimeError("devtools sent a close frame")
            if opcode in (0x9, 0xA):
                continue  # the browser does not ping; ignore control frames if it does
            message += payload
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._send_text(json.dumps(msg))
        while True:
            reply = self._recv_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})


class Page:
    def __init__(self, tools, url):
        self.tools = tools
        self.target = tools.call("Target.createTarget", {"url": url})["targetId"]
        self.session = tools.call(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )["sessionId"]

    def state(self):
        """The page's status line and chat log."""
        expr = (
            "JSON.stringify({status: document.getElementById('status')?.textContent ?? null,"
            " log: [...document.querySelectorAll('#log li')].map(li => li.textContent)})"
        )
        result = self.tools.call(
            "Runtime.evaluate",
            {"expression": expr, "returnByValue": True},
            self.session,
        )["result"]
        return json.loads(result.get("value") or '{"status": null, "log": []}')

    def wait(self, predicate):
        """Polls the page until predicate(state) holds; returns (held, last state)."""
        end = time.monotonic() + DEADLINE
        while True:
            state = self.state()
            if predicate(state):
                return True, state
            if time.monotonic() > end:
                return False, state
            time.sleep(0.05)

    def say(self, text):
        expr = (
            f"document.getElementById('text').value = {json.dumps(text)};"
            " document.getElementById('send').requestSubmit();"
        )
        self.tools.call("Runtime.evaluate", {"expression": expr}, self.session)

    def reload(self):
        """Loads the page again (its socket closes, a new one joins); returns whether the new
        document came within the deadline. The old one is marked so that it is not taken for it."""
        self.tools.call("Runtime.evaluate", {"expression": "window.stale = true"}, self.session)
        self.tools.call("Page.reload", {}, self.session)
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            try:
                result = self.tools.call(
                    "Runtime.evaluate",
                    {"expression": "window.stale === true", "returnByValue": True},
                    self.session,
                )["result"]
                if result.get("value") is False:
                    return True
            except RuntimeError:
                pass  # no document to evaluate in, mid-navigation
            time.sleep(0.05)
        return False

    def close(self):
        self.tools.call("Target.closeTarget", {"targetId": self.target})


def shared_room(tools, ports, token, check, has):
    """A page on each of two instances that share their room through Redis: everything either
    page sees of the other crossed between the instances."""
    one, two = (f"http://127.0.0.1:{port}/?token={token}" for port in ports)
    cat = Page(tools, f"{one}&name=cat")
    check("one: cat connects", *cat.wait(lambda s: s["status"] == "connected as cat"))
    check("one: cat sees own join", *cat.wait(has("* cat joined")))
    dan = Page(tools, f"{two}&name=dan")
    check("two: dan connects", *dan.wait(lambda s: s["status"] == "connected as dan"))
    check("one: cat sees dan (two) join", *cat.wait(has("* dan joined")))

    # Dan joined after cat, so cat joins again for dan to see it: the reload closes the old
    # socket (a leave) and opens a new one (a join), both on instance one.
    check("one: cat's page reloads", cat.reload())
    check("one: cat reconnects", *cat.wait(lambda s: s["status"] == "connected as cat"))
    check("two: dan sees cat (one) leave and join", *dan.wait(has("* cat left", "* cat joined")))

    dan.say("dan-typed-on-two")
    check("one: cat sees dan's (two) typed message", *cat.wait(has("dan: dan-typed-on-two")))
    check("two: dan sees own typed message", *dan.wait(has("dan: dan-typed-on-two")))
    cat.say("cat-typed-on-one")
    check("two: dan sees cat's (one) typed message", *dan.wait(has("cat: cat-typed-on-one")))
    check("one: cat sees own typed message", *cat.wait(has("cat: cat-typed-on-one")))
    cat.close()
    dan.close()


def main():
    chat_port, devtools_port, token = sys.argv[1], sys.argv[2], sys.argv[3]
    shared = sys.argv[4:6]
    version = json.load(
        urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/version", timeout=10)
    )
    tools = DevTools(version["webSocketDebuggerUrl"])
    base = f"http://127.0.0.1:{chat_port}/"
    results = []

    def check(name, held, state=None):
        results.append((name, held))
        if not held:
            print(f"  {name}: page showed {state}", file=sys.stderr)

    def has(*lines):
        return lambda s: all(line in s["log"] for line in lines)

    ann = Page(tools, f"{base}?token={token}&name=ann&say=hello-from-ann")
    check("ann connects", *ann.wait(lambda s: s["status"] == "connected as ann"))
    check("ann sees own join and message", *ann.wait(has("* ann joined", "ann: hello-from-ann")))

    bob = Page(tools, f"{base}?token={token}&name=bob&say=hello-from-bob")
    check("bob connects", *bob.wait(lambda s: s["status"] == "connected as bob"))
    check("ann sees bob join", *ann.wait(has("* bob joined")))
    check("ann sees bob's message", *ann.wait(has("bob: hello-from-bob")))
    check("bob sees own join and message", *bob.wait(has("* bob joined", "bob: hello-from-bob")))

    # Bob joined after ann's greeting, so ann speaks again, through the page's form.
    ann.say("ann-typed-this")
    check("bob sees ann's message", *bob.wait(has("ann: ann-typed-this")))
    check("ann sees own typed message", *ann.wait(has("ann: ann-typed-this")))

    # Without the token the gatekeeper answers 403: the browser reports an abnormal close.
    eve = Page(tools, f"{base}?name=eve&say=sneaky")
    check("no token: closed (1006)", *eve.wait(lambda s: s["status"] == "closed (1006)"))
    check("no token: nothing received", *eve.wait(lambda s: s["log"] == []))

    bob.close()
    check("ann sees bob leave", *ann.wait(has("* bob left")))
    _, final = ann.wait(lambda s: True)
    check(
        "eve never joined",
        not any("eve" in line for line in final["log"]),
        final,
    )
    ann.close()
    eve.close()

    if shared:
        shared_room(tools, shared, token, check, has)

    width = max(len(name) for name, _ in results)
    print(f"{'check'.ljust(width)}  result")
    for name, held in results:
        print(f"{name.ljust(width)}  {'PASS' if held else 'FAIL'}")
    failed = sum(1 for _, held in results if not held)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
