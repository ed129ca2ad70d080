#!/usr/bin/env python3
"""The client side of bench/memory.sh: loads that make a proxy hold memory,
while watching the proxy's resident set (/proc/PID/status).

Usage:
  memload.py idle HOST:PORT N PID
      opens N connections, each doing one set and one get, keeps them
      open and idle; prints "rss_before rss_after" in bytes
  memload.py KIND HOST:PORT PID SECONDS [MC_PID] [RCVBUF] [CAP]
      one connection doing KIND for SECONDS (or until the proxy's RSS
      passes CAP bytes, default 4 GiB), never reading replies:
        flood-get  "get xk" pipelined in 8 KiB writes, the socket's
                   SO_RCVBUF set to RCVBUF (default 4096) before connecting
        trickle    "get k" in 7-byte TCP_NODELAY writes, one per send
        flood-set  100-byte sets in 64 KiB writes, as fast as they go
      with MC_PID, memcached is sent SIGSTOP once the connection has done
      one round trip and SIGCONT at the end (0: neither). Prints
      "rss_before peak_rss rss_after_close bytes_sent seconds capped",
      the sizes in bytes, capped 1 when the run stopped at CAP; the peak is
      the
      largest of the samples (every 20 ms) and of VmHWM, which is reset at
      the start when /proc/PID/clear_refs allows.
"""
import os
import select
import signal
import socket
import sys
import time

from mcclient import connect, parse_addr, recv_exact

SAMPLE_EVERY = 0.02
CHUNK_GET = b"get xk\r\n" * 1024          # 8 KiB
TRICKLE = b"get k\r\n"                    # 7 bytes
SET_ONE = b"set k 0 0 100\r\n" + b"v" * 100 + b"\r\n"
CHUNK_SET = SET_ONE * (64 * 1024 // len(SET_ONE))


def status(pid, field):
    """A VmXXX field of /proc/PID/status, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no %s for pid %d" % (field, pid))


def cmd_idle(addr, n, pid):
    before = status(pid, "VmRSS")
    socks = []
    for i in range(n):
        sock = connect(addr)
        key = b"idle%d" % i
        sock.sendall(b"set %s 0 0 10\r\n0123456789\r\nget %s\r\n"
                     % (key, key))
        want = b"STORED\r\nVALUE %s 0 10\r\n0123456789\r\nEND\r\n" % key
        got = recv_exact(sock, len(want))
        if got != want:
            print("memload: connection %d: unexpected %r" % (i, got[:80]),
                  file=sys.stderr)
            return 1
        socks.append(sock)
    time.sleep(1)
    after = status(pid, "VmRSS")
    print(before, after)
    for sock in socks:
        sock.close()
    return 0


def open_load(kind, addr, rcvbuf):
    if kind == "flood-get":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5.0)
        sock.connect(parse_addr(addr))
        return sock, CHUNK_GET
    sock = connect(addr)
    # One round trip, so the proxy's upstream connection is up before
    # memcached stops.
    sock.sendall(b"get __mcfault_memload\r\n")
    if recv_exact(sock, 5) != b"END\r\n":
        raise RuntimeError("unexpected reply to the first get")
    return sock, TRICKLE if kind == "trickle" else CHUNK_SET


def cmd_load(kind, addr, pid, seconds, mc_pid, rcvbuf, cap):
    sock, chunk = open_load(kind, addr, rcvbuf)
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
    except OSError:
        pass
    before = status(pid, "VmRSS")
    peak = before
    sent = 0
    capped = 0
    if mc_pid:
        os.kill(mc_pid, signal.SIGSTOP)
    try:
        sock.setblocking(False)
        off = 0
        start = time.monotonic()
        deadline = start + seconds
        next_sample = start
        while True:
            now = time.monotonic()
            if now >= next_sample:
                peak = max(peak, status(pid, "VmRSS"))
                next_sample = now + SAMPLE_EVERY
                if peak > cap:
                    capped = 1
                    break
            if now >= deadline:
                break
            try:
                n = sock.send(chunk[off:])
            except BlockingIOError:
                select.select([], [sock], [], SAMPLE_EVERY)
                continue
            sent += n
            off = (off + n) % len(chunk)
        peak = max(peak, status(pid, "VmRSS"), status(pid, "VmHWM"))
        elapsed = time.monotonic() - start
    finally:
        sock.close()
        if mc_pid:
            os.kill(mc_pid, signal.SIGCONT)
    time.sleep(1)
    print(before, peak, status(pid, "VmRSS"), sent, "%.1f" % elapsed, capped)
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "idle":
        return cmd_idle(argv[2], int(argv[3]), int(argv[4]))
    if (5 <= len(argv) <= 8 and
            argv[1] in ("flood-get", "trickle", "flood-set")):
        mc_pid = int(argv[5]) if len(argv) > 5 and argv[5] != "0" else None
        rcvbuf = int(argv[6]) if len(argv) > 6 else 4096
        cap = int(argv[7]) if len(argv) > 7 else 4 << 30
        return cmd_load(argv[1], argv[2], int(argv[3]), float(argv[4]),
                        mc_pid, rcvbuf, cap)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
