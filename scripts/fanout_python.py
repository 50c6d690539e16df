"""The Python reference for benches/fanout.rs: a `websockets` sync (threading) server whose
every connection joins one room, and a publisher that sends each message to every member
through a thread pool, which is how that library's documentation suggests broadcasting with its
sync API (it has no broadcast of its own there): a member whose peer stopped reading holds a pool
worker in `send` until its connection dies.

usage: fanout_python.py MEMBERS STALLED RATE SIZE SECONDS

Prints `listening PORT` once the server is up; then waits for MEMBERS + STALLED connections,
publishes RATE messages/s of SIZE bytes for SECONDS (each stamped with its number and the
wall-clock time it was due, as the Rust bench stamps them), sends `end COUNT`, and prints
`publish US US ...` (the publish loop's duration per message, in microseconds) and
`stats THREADS RSS_KIB`. Listens on 127.0.0.1 only; compression is off, as in the Rust runs.
"""

import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from websockets.sync.server import serve

POOL_WORKERS = 64

members = set()
lock = threading.Lock()
changed = threading.Condition(lock)


def handler(ws):
    with lock:
        members.add(ws)
        changed.notify_all()
    try:
        for _ in ws:
            pass
    except Exception:
        pass
    finally:
        with lock:
            members.discard(ws)


def send(ws, msg):
    try:
        ws.send(msg)
    except Exception:
        pass


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    want, stalled, rate, size, seconds = (int(a) for a in sys.argv[1:6])
    total = want + stalled
    with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        print(f"listening {port}", flush=True)
        with lock:
            if not changed.wait_for(lambda: len(members) >= total, timeout=120):
                sys.exit("members did not join")
        pool = ThreadPoolExecutor(max_workers=POOL_WORKERS)
        count = rate * seconds
        period = 1.0 / rate
        start = time.monotonic()
        wall_start = time.time_ns()
        publish = []
        for seq in range(count):
            due = start + period * seq
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            due_wall = wall_start + int(period * seq * 1e9)
            msg = struct.pack(">QQ", seq, due_wall) + bytes(size - 16)
            began = time.perf_counter()
            with lock:
                now = list(members)
            for ws in now:
                pool.submit(send, ws, msg)
            publish.append(int((time.perf_counter() - began) * 1e6))
        threads = threading.active_count()
        rss = rss_kib()
        with lock:
            now = list(members)
        for ws in now:
            pool.submit(send, ws, f"end {count}")
        print("publish " + " ".join(map(str, publish)), flush=True)
        print(f"stats {threads} {rss}", flush=True)
        # Until the bench closes our stdin (its members have their end).
        sys.stdin.read()
        pool.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    main()
