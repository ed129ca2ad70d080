#!/usr/bin/env python3
"""Usage: exchange.py PORT REQUEST WANT

Sends REQUEST to 127.0.0.1:PORT and checks that the reply is exactly WANT
(read until that many bytes came, the peer closed, or 5 s passed). Both
take Python escapes (\\r\\n, \\x00). Exit 0 when they match, else a message
saying what came. Used by the container scripts (scripts/container-smoke.sh,
tests/container/run.sh)."""
import socket
import sys


def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin1")


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    port, req, want = int(argv[1]), unescape(argv[2]), unescape(argv[3])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    got = b""
    try:
        while len(got) < len(want):
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    s.close()
    if got != want:
        sys.exit("sent %r to port %d: got %r, want %r" % (req, port, got, want))


if __name__ == "__main__":
    main(sys.argv)
