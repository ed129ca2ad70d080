#!/usr/bin/env python3
"""Writes the seed scripts of fuzz_conn into corpus_conn/.

Each seed is a script in the input format of tests/fuzz/fuzz_conn.c
(described in docs/fuzzing.md): a head byte, nine rule bytes, then steps.
Run it again after changing the format: python3 tests/fuzz/seeds_conn.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# Operations of gen_request (pick % 21).
OPS = ["set", "add", "replace", "append", "prepend", "cas", "get", "gets",
       "gat", "gats", "delete", "incr", "decr", "touch", "mg", "ms", "md",
       "ma", "mn", "version", "quit", "longget", "junk", "health", "stats",
       "metadump"]
# Key prefixes: a key byte of 0 is a new "ok:" key (no rule); 7 + i a new
# key of prefix i; 0x80, n reuses key n of the pool.
PREFIX = {"ok": 0, "ef": 7, "eF": 8, "df": 9, "dF": 10, "xf": 11, "xF": 12,
          "hf": 13, "hF": 14, "mi": 15}
MG = "v f k O q s c b t".split()
MS = "q O k b F5 T0 ME MR I".split()
MD = "q O k b C0".split()
MA = "q O k b v D3 MD".split()
# Value styles.
NUM, TEXT, TRICKY, EMS, BINARY = range(5)

CHECKED = 0x01
RULES = 0x08
TRACE = 0x60  # with EVENTS: -vv traces (to /dev/null)
EVENTS = 0x40
LF = 0x80


def rule_byte(after=0, limit=0, msg=None, delay=3, jitter=False):
    """after/limit 0..2; msg 0..11 (messages[]); delay 0..3 (delays[])."""
    b = {0: 0, 1: 2, 2: 3}[after] | ({0: 0, 1: 2, 2: 3}[limit] << 2)
    # msg and delay share the high bits: msg wins when given.
    hi = msg if msg is not None else delay
    return (b | ((hi & 0xf) << 4) | (0x40 if jitter else 0)) & 0xff


class Script:
    def __init__(self, head=CHECKED | RULES, rules=None, fail_at=None):
        self.b = bytearray([head])
        self.b += bytes(rules if rules is not None else [0x30] * 9)
        # fail_at: the proxy's allocation number fail_at (1..256) fails.
        self.b += bytes([0]) if fail_at is None else bytes([0xe0, fail_at - 1])

    def _gen(self, op, opt, *rest):
        self.b += bytes([0, OPS.index(op), opt, *rest])
        return self

    def key(self, prefix="ok", reuse=None):
        if reuse is not None:
            return [0x80, reuse]
        return [PREFIX[prefix]]

    def store(self, op, prefix="ok", length=5, style=TEXT, noreply=False,
              big=None, reuse=None, real_cas=False):
        opt = (0 if noreply else 1) | (0x3c if big is not None else 0)
        opt |= 0x80 if real_cas else 0
        value = [length, style] + ([big] if big is not None else [])
        return self._gen(op, opt, *self.key(prefix, reuse), *value, 7)

    def get(self, op="get", keys=(("ok", None),)):
        opt = 1 | (((len(keys) - 1) % 5) << 2)
        rest = []
        for prefix, reuse in keys:
            rest += self.key(prefix, reuse)
        return self._gen(op, opt, *rest)

    def keyed(self, op, prefix="ok", reuse=None, noreply=False, delta=3):
        rest = self.key(prefix, reuse)
        if op in ("incr", "decr"):
            rest.append(delta)
        return self._gen(op, 0 if noreply else 1, *rest)

    def meta(self, op, flags, prefix="ok", reuse=None, rot=0, length=4,
             style=TEXT):
        cand = {"mg": MG, "ms": MS, "md": MD, "ma": MA}[op]
        mask = 0
        for f in flags:
            mask |= 1 << cand.index(f)
        rest = self.key(prefix, reuse) + [mask & 0xff, mask >> 8, rot]
        if op == "ms":
            rest += [length, style]
        return self._gen(op, 1, *rest)

    def plain(self, op):
        return self._gen(op, 1)

    def longget(self, count_byte, mix, gets=False):
        return self._gen("longget", 5 if gets else 1, count_byte, mix)

    def junk(self, size_byte=0):
        return self._gen("junk", 1, size_byte)

    def stall_client(self):
        self.b += bytes([13])
        return self

    def stall_upstream(self):
        self.b += bytes([24])
        return self

    def csend(self, n=0):
        self.b += bytes([14, n])
        return self

    def ssend(self, n=0):
        self.b += bytes([18, n])
        return self

    def pump(self):
        self.b += bytes([22])
        return self

    def wait(self):
        self.b += bytes([25])
        return self

    def flush(self):
        self.b += bytes([27])
        return self

    def half_close(self):
        self.b += bytes([29])
        return self

    def server_close(self):
        self.b += bytes([30])
        return self

    def client_close(self):
        self.b += bytes([31, 0])
        return self

    def drain_all(self):
        self.b += bytes([31, 1])
        return self


def seeds():
    s = {}
    x = Script()
    (x.store("set", length=3).get(keys=[("ok", 0)]).store("add", reuse=0)
     .store("append", reuse=0).store("prepend", reuse=0)
     .get("gets", keys=[("ok", 0), ("ok", None)]).store("cas", reuse=0,
                                                        real_cas=True)
     .keyed("delete", reuse=0).keyed("touch", reuse=0).plain("version")
     .plain("mn").flush().half_close())
    s["classic"] = x

    x = Script()
    (x.store("set", style=NUM).keyed("incr", reuse=0).keyed("decr", reuse=0,
                                                            delta=200)
     .keyed("incr", reuse=0, noreply=True).meta("ma", ["v", "O", "k"],
                                                reuse=0)
     .meta("ma", ["q", "O"], reuse=0).meta("ma", ["MD", "D3", "v"], reuse=0)
     .keyed("incr").meta("ma", ["O", "k"]).flush())
    s["counters"] = x

    x = Script()
    (x.meta("ms", ["O", "k", "F5"], length=6).meta("mg", ["v", "f", "k", "O",
                                                           "s", "c"], reuse=0)
     .meta("mg", ["k", "O", "q"]).meta("mg", ["v", "q", "O"], reuse=0)
     .meta("md", ["q", "O"], reuse=0).meta("md", ["q", "O", "k"], reuse=0)
     .meta("ms", ["ME", "O", "q"], reuse=0).meta("ms", ["MR", "q", "O"])
     .plain("mn").meta("mg", ["b", "k", "O", "v"], reuse=0).flush())
    s["meta"] = x

    x = Script()
    (x.store("set", prefix="ef").get(keys=[("ef", None)])
     .store("set", prefix="eF").get(keys=[("eF", None)])
     .meta("mg", ["O", "k"], prefix="ef").meta("ms", ["O", "k", "q"],
                                               prefix="eF")
     .get(keys=[("ok", None), ("mi", None), ("ok", None)])
     .get("gat", keys=[("mi", None)]).meta("mg", ["O", "k"], prefix="mi")
     .meta("mg", ["q", "O"], prefix="mi").flush().half_close())
    s["errors_and_misses"] = x

    # A run of noreply commands (a group), then faults behind it (fenced).
    x = Script(rules=[rule_byte(msg=0)] * 9)
    (x.store("set", noreply=True).store("set", noreply=True)
     .meta("mg", ["v", "q", "O"], reuse=0).keyed("delete", noreply=True)
     .get(keys=[("ef", None)]).meta("ms", ["q", "O"], prefix="eF")
     .store("set", prefix="eF", noreply=True).plain("mn")
     .get(keys=[("df", None)]).csend(1).csend(3).ssend(1).ssend(1).pump()
     .ssend(2).flush().wait().flush())
    s["group_fence"] = x

    x = Script(rules=[rule_byte(delay=3)] * 9)
    (x.store("set", prefix="df", length=30).get(keys=[("ok", 0)])
     .get(keys=[("dF", None)]).store("set", prefix="dF").plain("mn")
     .csend(0).wait().wait().get(keys=[("df", None), ("ok", 0)]).flush()
     .wait().flush())
    s["delays"] = x

    x = Script()
    (x.store("set").get(keys=[("ok", 0)]).store("set", noreply=True)
     .get(keys=[("xf", None)]).get(keys=[("ok", 0)]).flush())
    s["drop"] = x

    x = Script()
    (x.store("set").store("set", prefix="xF", noreply=True)
     .get(keys=[("ok", 0)]).csend(5).pump().flush())
    s["drop_forward"] = x

    x = Script()
    (x.get(keys=[("ok", None)]).meta("mg", ["q", "O"], prefix="hf")
     .get(keys=[("ok", None)]).flush().half_close())
    s["hang"] = x

    x = Script()
    (x.store("set").get(keys=[("hF", None)]).get(keys=[("ok", 0)]).flush())
    s["hang_forward"] = x

    x = Script()
    x.store("set").get(keys=[("ok", 0)]).plain("quit").get().flush()
    s["quit"] = x

    # Replies and requests a byte at a time: MN split across reads.
    x = Script()
    (x.store("set", noreply=True).get(keys=[("ef", None)]).plain("mn")
     .meta("mg", ["q", "v", "O"], reuse=0).plain("mn"))
    for _ in range(20):
        x.csend(1).pump().ssend(1).pump()
    x.flush().half_close()
    s["byte_at_a_time"] = x

    x = Script()
    (x.store("set", big=40).get(keys=[("ok", 0)]).store("set", length=240,
                                                        style=TRICKY)
     .meta("mg", ["v"], reuse=1).store("set", prefix="ef", big=10)
     .csend(200).ssend(200).flush().flush())
    s["big_values"] = x

    x = Script()
    (x.store("set", style=TRICKY, length=39).get(keys=[("ok", 0)])
     .meta("mg", ["v", "k"], reuse=0).store("set", style=EMS, length=30)
     .get(keys=[("ok", 1)]).store("set", style=BINARY, length=33)
     .get("gats", keys=[("ok", 2), ("ok", 0)]).flush())
    s["tricky_values"] = x

    x = Script()
    (x.store("set").get(keys=[("ok", 0)]).get(keys=[("df", None)])
     .csend(0).ssend(9).server_close())
    s["server_close"] = x

    x = Script()
    (x.store("set").get(keys=[("df", None)]).get(keys=[("ok", 0)])
     .csend(30).client_close())
    s["client_close"] = x

    x = Script()
    (x.store("set").get(keys=[("df", None)]).get(keys=[("ok", 0)])
     .csend(0).pump().drain_all())
    s["drain_all"] = x

    x = Script(head=CHECKED | RULES | LF | TRACE | EVENTS)
    # opt 0x51: bare "\n", one key; 0x55: two keys.
    x.b += bytes([0, OPS.index("get"), 0x51, 0])
    x.b += bytes([0, OPS.index("get"), 0x55, 0x0f, 0])
    x.b += bytes([0, OPS.index("mn"), 0x41])
    x.flush().half_close()
    s["bare_newlines"] = x

    x = Script(rules=[rule_byte(after=1, limit=2, msg=2)] * 9)
    for _ in range(5):
        x.get(keys=[("ef", None)]).get(keys=[("mi", None)])
    x.flush()
    s["gates"] = x

    x = Script(head=CHECKED)
    (x.store("set", prefix="ef").get(keys=[("xf", None)])
     .get(keys=[("hf", None)]).flush())
    s["no_rules"] = x

    # A get past the line limit (get may), with miss and other rules.
    x = Script()
    (x.store("set").store("set", prefix="mi").longget(200, 0x01)
     .longget(40, 0x83, gets=True).flush())
    s["long_get"] = x

    x = Script()
    x.store("set").get(keys=[("ok", 0)]).junk(7).get().flush()
    s["line_too_long"] = x

    x = Script()
    (x.plain("health").store("set", noreply=True).plain("stats")
     .store("set", style=TRICKY).plain("metadump").plain("health")
     .store("set", noreply=True).plain("metadump").plain("mn").flush())
    s["health_stats_metadump"] = x

    # The client stops reading while big replies pile up in the proxy
    # (backpressure), memcached stops reading while requests pile up.
    x = Script()
    x.store("set", big=255).stall_client()
    for _ in range(5):
        x.get(keys=[("ok", 0)]).flush()
    x.stall_upstream().store("set", big=200).store("set", big=200).flush()
    x.store("set", big=200).get(keys=[("ef", None)]).flush()
    x.stall_client().flush().stall_upstream().flush()
    s["backpressure"] = x

    # Allocation failures: at the connection's start, in a pipeline with
    # faults, in a big reply.
    x = Script(fail_at=1)
    x.store("set").flush()
    s["fail_adopt"] = x
    x = Script(fail_at=9)
    (x.store("set", noreply=True).get(keys=[("ef", None)])
     .meta("mg", ["q", "v", "O"], reuse=0).get(keys=[("mi", None), ("ok", 0)])
     .get(keys=[("df", None)]).csend(7).ssend(5).flush().wait().flush())
    s["fail_pipeline"] = x
    x = Script(fail_at=6)
    x.store("set", big=100).get(keys=[("ok", 0)]).csend(9).flush()
    s["fail_big"] = x

    # An idle connection beside ours (modes 6 and 7).
    x = Script(head=6 | RULES)
    x.store("set").get(keys=[("ok", 0)]).flush().drain_all()
    s["neighbour_drain"] = x
    x = Script(head=7 | RULES)
    x.store("set").get(keys=[("xf", None)]).flush()
    s["neighbour_drop"] = x

    # Raw bytes both ways: (side byte, bytes); side 0 client, 1 memcached.
    def raw(*chunks):
        b = bytearray([0x08]) + bytes([0x30] * 9) + bytes([0])
        for side, data in chunks:
            while data:
                part, data = data[:127], data[127:]
                b += bytes([((len(part) - 1) << 1) | side]) + part
        return b

    s["raw_text"] = raw((0, b"get a\r\nmg ef:1 v\r\n"),
                        (1, b"VALUE a 0 1\r\nx\r\nEND\r\nVA 1\r\n"),
                        (1, b"y\r\nMN\r\nEN\r\n"))
    s["raw_binary"] = raw((0, b"\x80\x01\x00\x03" + b"\x00" * 20 + b"abc"),
                          (1, b"\x81\x01\x00\x00" + b"\x00" * 20))
    s["raw_watch"] = raw((0, b"watch\r\n"), (1, b"OK\r\nts=1 gid=2\n"),
                         (0, b"get x\r\n"))
    up_first = raw((0, b"\x80\x01\x00\x03" + b"\x00" * 20 + b"abc"),
                   (1, b"\x81\x01\x00\x00" + b"\x00" * 20))
    up_first[0] |= 0x80  # memcached closes first: a relay half-closes
    s["raw_binary_upstream_closes"] = up_first
    s["raw_junk"] = raw((0, b"set a 0 0 5\r\nab\r\nget \r\n\r\n\x00mn\n"),
                        (1, b"STORED\r\nVALUE a 0 99999999\r\nEND\r\n"),
                        (1, b"MN\r\nM"))
    return s


def main():
    out = os.path.join(HERE, "corpus_conn")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        if isinstance(data, Script):
            data = data.b
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(data))


if __name__ == "__main__":
    main()
