#!/usr/bin/env python3
"""Small helpers for the bench scripts: free ports, waiting for a memcached
(or a proxy in front of one) to answer, and storing a value. (The
sequential load is bench/rtt.c; bench/memload.py imports the socket
helpers below.)

Usage:
  mcclient.py ports K                 print K free 127.0.0.1 TCP ports
  mcclient.py wait HOST:PORT SECONDS [PID]
                                      wait until HOST:PORT answers a get;
                                      give up early if process PID exits
  mcclient.py set HOST:PORT KEY SIZE  store KEY with a SIZE-byte value
"""
import os
import socket
import sys
import time

# A wait probe: memcached, mcfault and nutcracker all answer it with END.
PROBE = b"get __mcfault_bench_probe\r\n"


def parse_addr(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def connect(addr, timeout=5.0):
    sock = socket.create_connection(parse_addr(addr), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock, n):
    """Reads exactly n bytes (or raises on EOF)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        r = sock.recv_into(view[got:], n - got)
        if r == 0:
            raise ConnectionError("connection closed after %d of %d bytes"
                                  % (got, n))
        got += r
    return bytes(buf)


def cmd_ports(k):
    # Hold every socket until all are bound so the K ports are distinct.
    socks = []
    for _ in range(k):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def cmd_wait(addr, seconds, pid=None):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            print("mcclient: process %d exited before %s answered"
                  % (pid, addr), file=sys.stderr)
            return 1
        try:
            with connect(addr, timeout=2.0) as sock:
                sock.sendall(PROBE)
                if recv_exact(sock, 5) == b"END\r\n":
                    return 0
                last = "unexpected reply"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    print("mcclient: %s did not answer within %ss (%s)"
          % (addr, seconds, last), file=sys.stderr)
    return 1


def cmd_set(addr, key, size):
    value = b"v" * size
    with connect(addr) as sock:
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), size, value))
        reply = recv_exact(sock, 8)
    if reply != b"STORED\r\n":
        print("mcclient: set %s: %r" % (key, reply), file=sys.stderr)
        return 1
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "ports" and len(args) == 1:
        cmd_ports(int(args[0]))
        return 0
    if cmd == "wait" and len(args) in (2, 3):
        pid = int(args[2]) if len(args) == 3 else None
        return cmd_wait(args[0], float(args[1]), pid)
    if cmd == "set" and len(args) == 3:
        return cmd_set(args[0], args[1], int(args[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
