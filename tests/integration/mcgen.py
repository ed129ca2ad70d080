# Seeded generator of memcached text-protocol request streams (classic and
# meta, well-formed and malformed) for the differential and ordering
# oracles. Each unit leaves memcached back at the start of a command line,
# so units can be replayed one at a time against a reference memcached to
# learn CAS ids, then concatenated into one pipelined stream.

import base64
import random
import re

import harness

# Stream end: the reply to this is unique and only ever comes last.
SENTINEL = b'set __end 0 0 3\r\nEND\r\nget __end\r\nmn\r\n'
SENTINEL_REPLY = b'STORED\r\nVALUE __end 0 3\r\nEND\r\nEND\r\nMN\r\n'

# The synchronising request used with the reference memcached; generated
# values never contain its reply.
_SYNC = b'version\r\n'
_SYNC_REPLY_RE = re.compile(rb'VERSION [0-9.]+\r\n\Z')

# memcached's item size limit is 1 MiB including the item header; values
# around it are accepted or refused with SERVER_ERROR (and swallowed).
ITEM_MAX = 1024 * 1024

# Things that look like replies or commands, for values.
TRICKY = [
    b'\r\nEND\r\n', b'\n', b'\r', b'\r\n', b'VALUE x 0 5\r\n', b'END\r\n',
    b'END', b'STORED\r\n', b'EN\r\n', b'HD\r\n', b'VA 5 v\r\n', b'MN\r\n',
    b'SERVER_ERROR mcfault injected\r\n', b'CLIENT_ERROR bad data chunk\r\n',
    b'ERROR\r\n', b'get foo\r\n', b'set x 0 0 1\r\n', b'\x80', b'\x00',
    b'mn\r\n', b'quit\r\n', b'  ', b'\r\n\r\n', b'VALUE k0 0 1 2\r\nx\r\n',
    b'ms k0 1\r\n', b'\xff\xfe', b'NOT_FOUND\r\n', b'\r\r\n\n',
]

# Benign data for malformed storage commands: when memcached decides not to
# read a data block these bytes get parsed as a command line, and all of
# them just produce ERROR.
BENIGN = [b'hello', b'abcde', b'zzzzz', b'12345', b'xyzzy']

LONG_KEY_OK = b'L' * 250
LONG_KEY_BAD = b'B' * 251

# TTLs whose effect does not depend on wall-clock timing during a test run:
# 0 never expires, negative and absolute-in-the-past expire at once, and the
# others are far away. 2592001 is read as a Unix time in 1970.
TTLS = [b'0', b'0', b'0', b'3600', b'86400', b'2592000', b'2592001', b'-1',
        b'1999999999', b'4294967295']

FLAGS = [b'0', b'0', b'0', b'1', b'65535', b'4294967295', b'4294967296',
         b'123']


def b64(raw):
    return base64.b64encode(raw)


class Unit:
    """One self-contained piece of the request stream."""
    __slots__ = ('data', 'keys', 'kind')

    def __init__(self, data, keys=(), kind=''):
        self.data = data
        self.keys = list(keys)
        self.kind = kind


class StreamGen:
    """Builds units from a seeded RNG. big: include many values from 100 KB
    up to past memcached's 1 MiB item limit. small: no value over 300 bytes
    (for streams sent a few bytes at a time)."""

    def __init__(self, seed, big=False, big_prob=None, small=False):
        self.rng = random.Random(seed)
        rng = self.rng
        self.big = big
        self.small = small
        self.big_prob = big_prob if big_prob is not None else (
            0.5 if big else 0.002)
        # Fewer keys with big values, so that fetches hit them.
        self.kkeys = [b'k%d' % i for i in range(8 if big else 30)]
        self.nkeys = [b'n%d' % i for i in range(8)]
        # Keys that never get a TTL, so the meta 't' flag is deterministic.
        self.pkeys = [b'p%d' % i for i in range(6)]
        self.weird = [b'key:with/punct~!@#$%^&*()', 'ümlaut'.encode(),
                      LONG_KEY_OK, b'L' * 249 + b'y', b'ctl\x01key',
                      b'x', b'__mark_lookalike']
        self.missing = [b'miss%d' % i for i in range(6)]
        # Only arithmetic uses these (ma N may create them, with numbers).
        self.never = [b'never%d' % i for i in range(6)]
        self.b64keys = [b64(rng.randbytes(rng.randint(1, 40)))
                        for _ in range(8)]
        self.b64keys.append(b64(b'with space\r\nand newline'))
        self.cas = {}
        self.cas_hi = 1
        self.pool = rng.randbytes(ITEM_MAX + 200000)

    # ---- building blocks

    def key(self, numeric=False):
        rng = self.rng
        r = rng.random()
        if numeric and r < 0.7:
            return rng.choice(self.nkeys)
        if r < 0.62:
            return rng.choice(self.kkeys)
        if r < 0.72:
            return rng.choice(self.nkeys)
        if r < 0.80:
            return rng.choice(self.pkeys)
        if r < 0.90:
            return rng.choice(self.missing)
        return rng.choice(self.weird)

    # Arithmetic (incr/decr/ma) only ever touches nkeys or never keys,
    # and nkeys only ever hold data for which memcached's answer does not
    # depend on timing. Two memcached 1.6.18 behaviours force this:
    # - incr/decr rewrites the number in place, space padded when it got
    #   shorter, only when nothing else holds a reference to the item (a reply
    #   still queued in a pipeline, the LRU maintainer thread); otherwise it
    #   makes a new item of the exact length. So numbers never get shorter:
    #   they are 10 digits with small deltas, and nothing but digits is ever
    #   appended or prepended to them.
    # - strtoull runs over item data that is not NUL-terminated; on data made
    #   only of white space it reads past the item. So non-numbers in nkeys
    #   start with a letter and hold no white space.
    def arith_key(self):
        rng = self.rng
        if rng.random() < 0.9:
            return rng.choice(self.nkeys)
        return rng.choice(self.never)

    def num_value(self, append=False):
        rng = self.rng
        r = rng.random()
        if append:
            if r < 0.7:
                return b'%d' % rng.randint(0, 999)
            return b''
        if r < 0.8:
            return b'%d' % rng.randint(2 * 10 ** 9, 8 * 10 ** 9)
        return b'x' + bytes(rng.choice(b'abcdefgh0123456789')
                            for _ in range(rng.randint(0, 12)))

    def store_value(self, key, v, append=False):
        """v, or for an arithmetic key a value safe for it (see above)."""
        if key in self.nkeys:
            return self.num_value(append)
        return v

    def ttl_for(self, keys):
        if any(k in self.pkeys for k in keys):
            return b'0'
        return self.rng.choice(TTLS)

    def casid(self, key):
        rng = self.rng
        seen = self.cas.get(key)
        r = rng.random()
        if seen and r < 0.65:
            return b'%d' % seen
        if r < 0.8:
            return b'%d' % rng.randint(1, self.cas_hi + 3)
        return rng.choice([b'0', b'18446744073709551615', b'1'])

    def big_value(self):
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            n = rng.choice([ITEM_MAX - 300, ITEM_MAX - 200, ITEM_MAX - 100,
                            ITEM_MAX - 60, ITEM_MAX - 40, ITEM_MAX,
                            ITEM_MAX + 1, ITEM_MAX + 100000])
        else:
            n = rng.randint(100 * 1024, ITEM_MAX + 50000)
        off = rng.randint(0, len(self.pool) - n)
        v = self.pool[off:off + n]
        if rng.random() < 0.5:
            # Reply-lookalikes at the edges of the block.
            t = rng.choice(TRICKY)
            v = t + v[len(t):-len(t)] + t if n > 2 * len(t) else v
        return v

    def value(self, numeric=False):
        rng = self.rng
        if numeric and rng.random() < 0.8:
            return rng.choice([b'0', b'1', b'10', b'99',
                               b'18446744073709551615',
                               b'%d' % rng.randint(0, 10 ** 6)])
        if rng.random() < self.big_prob and not self.small:
            return self.big_value()
        r = rng.random()
        if self.small and r >= 0.83:
            r = rng.random() * 0.83
        if r < 0.08:
            return b''
        if r < 0.38:
            return bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz0123456789 ')
                         for _ in range(rng.randint(1, 40)))
        if r < 0.63:
            return b''.join(rng.choice(TRICKY)
                            for _ in range(rng.randint(1, 5)))
        if r < 0.78:
            return rng.randbytes(rng.randint(1, 300))
        if r < 0.83:
            b = bytearray(range(256))
            rng.shuffle(b)
            return bytes(b)
        if r < 0.88:
            n = rng.randint(1024, 32 * 1024)
            off = rng.randint(0, len(self.pool) - n)
            return self.pool[off:off + n]
        return b'%d' % rng.randint(0, 10 ** 12)

    def noreply(self, p=0.25):
        return b' noreply' if self.rng.random() < p else b''

    # ---- classic

    def u_storage(self):
        rng = self.rng
        cmd = rng.choice([b'set', b'set', b'set', b'add', b'replace',
                          b'append', b'prepend'])
        numeric = rng.random() < 0.2
        k = self.key(numeric)
        v = self.store_value(k, self.value(numeric),
                             cmd in (b'append', b'prepend'))
        line = b'%s %s %s %s %d%s\r\n' % (cmd, k, rng.choice(FLAGS),
                                           self.ttl_for([k]), len(v),
                                           self.noreply())
        return Unit(line + v + b'\r\n', [k], 'store')

    def u_cas(self):
        rng = self.rng
        k = self.key()
        v = self.store_value(k, self.value())
        line = b'cas %s %s %s %d %s%s\r\n' % (k, rng.choice(FLAGS),
                                               self.ttl_for([k]), len(v),
                                               self.casid(k), self.noreply())
        return Unit(line + v + b'\r\n', [k], 'store')

    def u_get(self):
        rng = self.rng
        cmd = rng.choice([b'get', b'gets'])
        keys = [self.key() for _ in range(rng.choice([1, 1, 2, 3, 6]))]
        if rng.random() < 0.1:
            keys.append(keys[0])
        sep = b'  ' if rng.random() < 0.05 else b' '
        return Unit(cmd + b' ' + sep.join(keys) + b'\r\n', keys, 'get')

    def u_gat(self):
        rng = self.rng
        cmd = rng.choice([b'gat', b'gats'])
        keys = [self.key() for _ in range(rng.choice([1, 1, 2, 4]))]
        return Unit(b'%s %s %s\r\n' % (cmd, self.ttl_for(keys),
                                       b' '.join(keys)), keys, 'get')

    def u_delete(self):
        k = self.key()
        tail = self.rng.choice([b'', b'', b'', b' 0', b' 0 noreply', b' 5',
                                b' noreply', b' noreply'])
        return Unit(b'delete %s%s\r\n' % (k, tail), [k], 'other')

    def u_arith(self):
        rng = self.rng
        k = self.arith_key()
        delta = rng.choice([b'1', b'1', b'5', b'0', b'1000000',
                            b'18446744073709551616', b'abc', b'-1'])
        cmd = rng.choice([b'incr', b'decr'])
        return Unit(b'%s %s %s%s\r\n' % (cmd, k, delta, self.noreply()), [k],
                    'other')

    def u_touch(self):
        k = self.key()
        return Unit(b'touch %s %s%s\r\n' % (k, self.ttl_for([k]),
                                            self.noreply()), [k], 'other')

    # ---- meta

    def meta_key(self):
        """(key token, is_base64)"""
        rng = self.rng
        if rng.random() < 0.12:
            return rng.choice(self.b64keys), True
        return self.key(), False

    def opaque(self):
        rng = self.rng
        return b'O' + bytes(rng.choice(b'0123456789abcdefXYZ')
                            for _ in range(rng.randint(0, 12)))

    def flags_line(self, flags):
        self.rng.shuffle(flags)
        return b''.join(b' ' + f for f in flags)

    def u_mg(self):
        rng = self.rng
        k, isb = self.meta_key()
        fl = []
        for f, p in ((b'v', 0.6), (b'k', 0.3), (b'c', 0.3), (b'f', 0.3),
                     (b's', 0.3), (b'q', 0.3), (b'u', 0.05)):
            if rng.random() < p:
                fl.append(f)
        if rng.random() < 0.3:
            fl.append(self.opaque())
        if isb:
            fl.append(b'b')
        if k in self.pkeys:
            if rng.random() < 0.4:
                fl.append(b't')
        elif not isb or rng.random() < 0.5:
            if rng.random() < 0.1 and k not in self.nkeys:
                # (vivified items are empty: no arithmetic keys)
                fl.append(b'N' + rng.choice([b'0', b'3600', b'86400']))
            if rng.random() < 0.1:
                fl.append(b'T' + rng.choice([b'0', b'3600', b'86400',
                                               b'2592001']))
            if rng.random() < 0.05:
                fl.append(b'R' + rng.choice([b'30', b'100000']))
        return Unit(b'mg ' + k + self.flags_line(fl) + b'\r\n', [k], 'meta')

    def u_ms(self):
        rng = self.rng
        k, isb = self.meta_key()
        fl = []
        mode = None
        if rng.random() < 0.3:
            mode = rng.choice([b'E', b'A', b'P', b'R', b'S', b's', b'a', b'X'])
            fl.append(b'M' + mode)
        v = self.store_value(k, self.value(), mode in (b'A', b'P', b'a'))
        for f, p in ((b'c', 0.2), (b'k', 0.2), (b'q', 0.3), (b'I', 0.05)):
            if rng.random() < p:
                fl.append(f)
        if rng.random() < 0.3:
            fl.append(self.opaque())
        if rng.random() < 0.3:
            fl.append(b'F' + rng.choice(FLAGS))
        if rng.random() < 0.3:
            fl.append(b'T' + (b'0' if k in self.pkeys else rng.choice(TTLS)))
        if rng.random() < 0.15:
            fl.append(b'C' + self.casid(k))
        if isb:
            fl.append(b'b')
        line = b'ms %s %d%s\r\n' % (k, len(v), self.flags_line(fl))
        return Unit(line + v + b'\r\n', [k], 'meta')

    def u_md(self):
        rng = self.rng
        k, isb = self.meta_key()
        fl = []
        for f, p in ((b'q', 0.3), (b'k', 0.2), (b'I', 0.15)):
            if rng.random() < p:
                fl.append(f)
        if b'I' in fl and k not in self.pkeys and rng.random() < 0.5:
            fl.append(b'T' + rng.choice([b'3600', b'86400']))
        if rng.random() < 0.2:
            fl.append(self.opaque())
        if rng.random() < 0.15:
            fl.append(b'C' + self.casid(k))
        if isb:
            fl.append(b'b')
        return Unit(b'md ' + k + self.flags_line(fl) + b'\r\n', [k], 'meta')

    def u_ma(self):
        rng = self.rng
        k = self.arith_key()
        fl = []
        for f, p in ((b'v', 0.5), (b'q', 0.2), (b'c', 0.2), (b'k', 0.1)):
            if rng.random() < p:
                fl.append(f)
        if rng.random() < 0.3:
            fl.append(b'D' + rng.choice([b'1', b'7', b'0', b'1000']))
        if rng.random() < 0.3:
            fl.append(b'M' + rng.choice([b'I', b'D', b'+', b'-', b'i', b'd']))
        if k not in self.pkeys and rng.random() < 0.2:
            fl.append(b'N' + rng.choice([b'0', b'3600']))
            fl.append(b'J' + rng.choice([b'4000000000', b'5555555555']))
        if rng.random() < 0.2:
            fl.append(self.opaque())
        if rng.random() < 0.1:
            fl.append(b'C' + self.casid(k))
        return Unit(b'ma ' + k + self.flags_line(fl) + b'\r\n', [k], 'meta')

    def u_mn(self):
        return Unit(b'mn\r\n', [], 'other')

    def u_me(self):
        # Only misses: a hit prints la= (seconds since last access).
        rng = self.rng
        if rng.random() < 0.3:
            return Unit(b'me %s b\r\n' % b64(b'never-stored-%d'
                                             % rng.randint(0, 9)), [], 'other')
        return Unit(b'me absent%d\r\n' % rng.randint(0, 9), [], 'other')

    def u_misc(self):
        return Unit(self.rng.choice([
            b'version\r\n', b'verbosity 0\r\n', b'verbosity 0 noreply\r\n',
            b'shutdown\r\n', b'verbosity\r\n']), [], 'other')

    def u_quiet_run(self):
        """A run of commands most of which answer nothing."""
        rng = self.rng
        parts = []
        for _ in range(rng.randint(3, 12)):
            r = rng.random()
            k = self.key()
            if r < 0.25:
                mk = rng.choice(self.missing + self.kkeys)
                parts.append(b'mg %s q v k\r\n' % mk)
            elif r < 0.45:
                v = self.store_value(k, self.value())
                parts.append(b'ms %s %d q T%s\r\n%s\r\n'
                             % (k, len(v), b'0' if k in self.pkeys
                                else rng.choice([b'0', b'3600']), v))
            elif r < 0.55:
                parts.append(b'md %s q\r\n' % k)
            elif r < 0.8:
                v = self.store_value(k, self.value())
                parts.append(b'set %s 0 0 %d noreply\r\n%s\r\n'
                             % (k, len(v), v))
            elif r < 0.9:
                parts.append(b'incr %s 1 noreply\r\n' % self.arith_key())
            else:
                parts.append(b'delete %s noreply\r\n' % k)
        return Unit(b''.join(parts), [], 'quiet')

    # ---- malformed and edge input (each leaves memcached in line sync)

    def u_malformed(self):
        rng = self.rng
        k = rng.choice(self.kkeys)
        ben = rng.choice(BENIGN)
        nr = self.noreply(0.3)
        choices = [
            # data block longer than declared: bad data chunk, then the
            # leftover is a line of its own
            lambda: b'set %s 0 0 %d%s\r\n%s\r\n'
                    % (k, len(ben) - rng.randint(1, 4), nr, ben),
            lambda: b'ms %s %d\r\n%s\r\n' % (k, len(ben) - rng.randint(1, 3),
                                              ben),
            # data block shorter than declared: eats into a filler line
            lambda: b'set %s 0 0 %d%s\r\nabc\r\n%s\r\n'
                    % (k, rng.randint(6, 12), nr,
                       b'z' * rng.randint(14, 40)),
            lambda: b'ms %s %d q\r\nabc\r\n%s\r\n'
                    % (k, rng.randint(6, 12), b'z' * rng.randint(14, 40)),
            # data block ending in bare \n
            lambda: b'set %s 0 0 5\r\nhello\nX\r\n' % k,
            lambda: b'set %s 0 0 -1\r\n%s\r\n' % (k, ben),
            lambda: b'ms %s -1\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 0 abc\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 0 5x\r\n%s\r\n' % (k, ben),
            lambda: b'ms %s abc\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 0 4294967297%s\r\nx\r\n' % (k, nr),
            lambda: b'set %s 0 0 4294967298\r\nxy\r\n' % k,
            lambda: b'set %s 0 0 4294967295\r\n%s\r\n' % (k, ben),
            lambda: b'ms %s 4294967297 T0\r\nx\r\n' % k,
            lambda: b'set %s 0 0 2147483647\r\n%s\r\n' % (k, ben),
            lambda: b'set %s abc 0 5\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 xyz 5\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 0 +5\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 00 0 05\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 0 5 \r\n%s\r\n' % (k, ben),
            # keys over 250 bytes
            lambda: b'set %s 0 0 5%s\r\n%s\r\n' % (LONG_KEY_BAD, nr, ben),
            lambda: b'ms %s 5\r\n%s\r\n' % (LONG_KEY_BAD, ben),
            lambda: b'mg %s v\r\n' % LONG_KEY_BAD,
            lambda: b'delete %s\r\n' % LONG_KEY_BAD,
            lambda: b'incr %s 1\r\n' % LONG_KEY_BAD,
            lambda: b'touch %s 0\r\n' % LONG_KEY_BAD,
            lambda: b'md %s q\r\n' % LONG_KEY_BAD,
            lambda: b'ma %s\r\n' % LONG_KEY_BAD,
            lambda: b'cas %s 0 0 5 1\r\n%s\r\n' % (LONG_KEY_BAD, ben),
            # wrong token counts
            lambda: b'set %s 0 0\r\n' % k,
            lambda: b'set %s 0\r\n' % k,
            lambda: b'set\r\n',
            lambda: b'get\r\n',
            lambda: b'gets\r\n',
            lambda: b'gat 0\r\n',
            lambda: b'gat\r\n',
            lambda: b'gats 100\r\n',
            lambda: b'delete\r\n',
            lambda: b'delete %s noreply extra\r\n' % k,
            lambda: b'incr %s\r\n' % k,
            lambda: b'incr\r\n',
            lambda: b'touch %s\r\n' % k,
            lambda: b'cas %s 0 0 5\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 0 5 noreply extra\r\n%s\r\n' % (k, ben),
            lambda: b'set %s 0 0 5 %s\r\n%s\r\n'
                    % (k, b' '.join(b'%d' % i for i in range(25)), ben),
            lambda: b'get %s\r\n' % b' '.join(self.key() for _ in range(30)),
            lambda: b'mg\r\n', lambda: b'ms %s\r\n' % k, lambda: b'ms\r\n',
            lambda: b'md\r\n', lambda: b'ma\r\n', lambda: b'me\r\n',
            lambda: b'mn extra\r\n',
            lambda: b'version extra\r\n',
            # unknown commands
            lambda: b'foo\r\n', lambda: b'GET %s\r\n' % k,
            lambda: b'mz %s\r\n' % k, lambda: b'm\r\n', lambda: b'g\r\n',
            lambda: b'x y z\r\n', lambda: b'getx %s\r\n' % k,
            lambda: b'sets %s 0 0 5\r\n%s\r\n' % (k, ben),
            lambda: b'stats nonsense\r\n',
            # empty lines, odd white space and line endings
            lambda: b'\r\n', lambda: b'\n', lambda: b' \r\n',
            lambda: b'\r\r\n',
            lambda: b'get %s\n' % k, lambda: b'mn\n',
            lambda: b'mg %s v\n' % k,
            lambda: b'set %s 0 0 5\n%s\r\n' % (k, ben),
            lambda: b'ms %s 5 T0\n%s\r\n' % (k, ben),
            lambda: b'   get %s\r\n' % k, lambda: b'get  %s   \r\n' % k,
            lambda: b'get %s\x00junk\r\n' % k, lambda: b'mg %s\tv\r\n' % k,
            lambda: b'get \x01\r\n',
            # (0x80 first on a connection would mean binary protocol)
            lambda: b'mn\r\n\x80garbage\r\n',
            lambda: b'get %s noreply\r\n' % k,
            # meta flag errors
            lambda: b'mg %s !\r\n' % k, lambda: b'mg %s v v\r\n' % k,
            lambda: b'mg %s O%s\r\n' % (k, b'9' * 33),
            lambda: b'mg !!!! b\r\n', lambda: b'mg %s Tabc\r\n' % k,
            lambda: b'mg %s %s\r\n' % (k, b' '.join(b'%d' % i
                                                    for i in range(21))),
            lambda: b'ms %s 5 MX\r\n%s\r\n' % (k, ben),
            lambda: b'ms %s 5 S3\r\n%s\r\n' % (k, ben),
            lambda: b'ms %s 5 q MX\r\n%s\r\n' % (k, ben),
            lambda: b'md %s Zzz\r\n' % k, lambda: b'ma %s Mx\r\n' % k,
            lambda: b'ma %s Dabc\r\n' % k,
            lambda: b'ma %s N3600 Jabc\r\n' % k,
            lambda: b'ma %s v\r\n' % self.arith_key(),
            # too large for the cache: memcached answers at once and
            # swallows the data block
            lambda: (b'mn\r\n' if self.small
                     else self._too_large(k, nr)),
            # gat with a bad exptime
            lambda: b'gat abc %s\r\n' % k,
            lambda: b'touch %s abc\r\n' % k,
        ]
        return Unit(rng.choice(choices)(), [k], 'malformed')

    def _too_large(self, k, nr):
        rng = self.rng
        n = rng.choice([ITEM_MAX, ITEM_MAX + 1, 2 * ITEM_MAX])
        off = rng.randint(0, len(self.pool) - min(n, len(self.pool)))
        v = (self.pool[off:off + n] + b'\0' * n)[:n]
        if rng.random() < 0.5:
            return b'set %s 0 0 %d%s\r\n%s\r\n' % (k, n, nr, v)
        return b'ms %s %d%s\r\n%s\r\n' % (k, n, rng.choice([b'', b' q']), v)

    def u_long_line(self):
        """Lines close to memcached's 2048-byte limit, and get lines past it
        (which memcached allows)."""
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            # 2047 bytes plus \r\n: at most 2048 bytes ever sit without a
            # newline, so memcached never closes.
            return Unit(b'x' * 2047 + b'\r\n', [], 'long')
        if r < 0.5:
            keys = []
            n = 4
            while n < 2000:
                k = self.key()
                if k in (LONG_KEY_OK, b'L' * 249 + b'y'):
                    continue
                keys.append(k)
                n += len(k) + 1
            return Unit(b'get ' + b' '.join(keys) + b'\r\n', keys, 'get')
        cmd = rng.choice([b'get', b'gets'])
        # Mostly misses: a few hundred hits on big values would make the
        # reply hundreds of megabytes.
        keys = [rng.choice(self.missing) for _ in range(rng.randint(300, 900))]
        for _ in range(3):
            keys[rng.randrange(len(keys))] = rng.choice(self.kkeys)
        return Unit(cmd + b' ' + b' '.join(keys) + b'\r\n', keys, 'get')

    # ---- the mix

    WEIGHTS = [
        ('u_storage', 20), ('u_cas', 4), ('u_get', 14), ('u_gat', 4),
        ('u_delete', 5), ('u_arith', 5), ('u_touch', 3), ('u_mg', 12),
        ('u_ms', 10), ('u_md', 4), ('u_ma', 5), ('u_mn', 3), ('u_me', 1),
        ('u_misc', 1), ('u_malformed', 10), ('u_quiet_run', 3),
        ('u_long_line', 1),
    ]

    BIG_WEIGHTS = [
        ('u_storage', 30), ('u_get', 25), ('u_gat', 3), ('u_mg', 15),
        ('u_ms', 15), ('u_delete', 2), ('u_malformed', 4), ('u_quiet_run', 3),
        ('u_mn', 2),
    ]

    def unit(self):
        table = self.BIG_WEIGHTS if self.big else self.WEIGHTS
        names = [n for n, _ in table]
        weights = [w for _, w in table]
        return getattr(self, self.rng.choices(names, weights)[0])()

    # ---- learning CAS ids from a reference memcached

    def observe(self, unit, reply):
        """Records CAS ids seen in the reply to unit."""
        for key, cas in parse_cas(reply, unit.keys[0] if unit.keys else None):
            self.cas[key] = cas
            if cas > self.cas_hi:
                self.cas_hi = cas


def parse_cas(reply, meta_key):
    """(key, cas) pairs in a reply stream: from 'VALUE k f n cas' lines and
    from meta 'c<cas>' tokens (attributed to meta_key). Walks data blocks by
    their length, so values cannot fool it."""
    found = []
    pos = 0
    n = len(reply)
    try:
        while pos < n:
            eol = reply.index(b'\r\n', pos)
            line = reply[pos:eol]
            pos = eol + 2
            parts = line.split(b' ')
            if parts[0] == b'VALUE' and len(parts) >= 4:
                if len(parts) >= 5:
                    found.append((parts[1], int(parts[4])))
                pos += int(parts[3]) + 2
            elif parts[0] in (b'VA', b'HD') and meta_key is not None:
                for p in parts[1:]:
                    if p[:1] == b'c' and p[1:].isdigit():
                        found.append((meta_key, int(p[1:])))
                if parts[0] == b'VA':
                    pos += int(parts[1]) + 2
    except (ValueError, IndexError):
        pass
    return found


class Reference:
    """A connection to a fresh reference memcached. Runs units one at a
    time (each followed by a sync request) and returns each unit's reply."""

    def __init__(self, port):
        self.sock = harness.connect(port)
        self.sock.sendall(_SYNC)
        rep = harness.recv_until(self.sock, b'\r\n', timeout=10)
        if not _SYNC_REPLY_RE.match(rep.data):
            raise AssertionError('reference memcached: bad version reply %r'
                                 % rep.data)
        self.sync_reply = rep.data

    def run(self, data):
        rep = harness.exchange(self.sock, data + _SYNC, tail=self.sync_reply,
                               timeout=30.0, drain=0.0, sleep_prob=0)
        if rep.timed_out or rep.eof or rep.reset:
            raise AssertionError(
                'reference memcached did not finish a unit (test generator '
                'bug: the unit left memcached out of line sync): %r (%r) '
                'unit %r...; got ...%r'
                % (rep, len(data), data[:300], rep.data[-300:]))
        return rep.data[:-len(self.sync_reply)]

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# Proxy-made replies: an error rule answers every command with a key that
# starts with INJECT_PREFIX (any of its keys, for multi-key commands) with
# SERVER_ERROR mcfault injected (nothing for classic noreply; a data block
# is swallowed).

INJECT_PREFIX = b'inj:'
INJECT_RULES = '''rules:
  - name: inj
    key: "%s*"
    action: error
    message: %s
''' % (INJECT_PREFIX.decode(), harness.INJECT_REPLY[:-2].decode())

# Command-looking text for injected data blocks: if mcfault forwarded any of
# it, memcached would store the victim key.
EVIL = (b'set victim 0 0 5\r\nEVIL!\r\nget victim\r\nmn\r\n'
        b'ms victim 5 T0\r\nEVIL!\r\nVALUE victim 0 5\r\nEND\r\n')


def marker_request(n):
    return b'get __mark_%d\r\n' % n


def marker_value(n):
    return b'MARK-%d' % n


def marker_reply(n):
    v = marker_value(n)
    return b'VALUE __mark_%d 0 %d\r\n%s\r\nEND\r\n' % (n, len(v), v)


def marker_setup(count):
    """Stores __mark_0..count-1 (one request, replies all STORED)."""
    return b''.join(b'set __mark_%d 0 0 %d noreply\r\n%s\r\n'
                    % (n, len(marker_value(n)), marker_value(n))
                    for n in range(count)) + b'mn\r\n'


class InjUnit:
    """An injected command: what mcfault gets, and what the direct run gets
    in its place (a marker get, or nothing when no reply is expected)."""
    __slots__ = ('proxy', 'direct', 'marker', 'key')

    def __init__(self, proxy, direct, marker, key):
        self.proxy = proxy
        self.direct = direct
        self.marker = marker
        self.key = key


class InjectGen(StreamGen):
    """StreamGen that also makes well-formed commands whose first key starts
    with INJECT_PREFIX. The units StreamGen makes never have such a key (a
    base64 key is matched decoded), so they are never injected."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        for k in self.b64keys:
            if base64.b64decode(k).startswith(INJECT_PREFIX):
                raise AssertionError('base64 key %r decodes to the inject '
                                     'prefix (test generator bug)' % k)

    def inj_key(self):
        rng = self.rng
        if rng.random() < 0.05:
            return INJECT_PREFIX + b'z' * (250 - len(INJECT_PREFIX))
        return INJECT_PREFIX + b'%d' % rng.randint(0, 30)

    def inj_value(self):
        rng = self.rng
        r = rng.random()
        if self.small:
            return EVIL if r < 0.3 else self.value()
        if r < 0.3:
            return EVIL * rng.randint(1, 50)
        if r < 0.35:
            return (EVIL * (300 * 1024 // len(EVIL) + 1))
        return self.value()

    def inj_unit(self, mark):
        """One injected command. mark: the marker number to use if the
        command expects a reply."""
        rng = self.rng
        k = self.inj_key()
        others = b''.join(b' ' + self.key() for _ in range(rng.choice(
            [0, 0, 1, 3])))
        nr = rng.random() < 0.35
        nrs = b' noreply' if nr else b''
        kind = rng.choice(['get', 'gat', 'store', 'store', 'cas', 'delete',
                           'arith', 'touch', 'mg', 'mg', 'ms', 'ms', 'md',
                           'ma', 'me'])
        if kind == 'get':
            cmd = b'%s %s%s\r\n' % (rng.choice([b'get', b'gets']), k, others)
            nr = False
        elif kind == 'gat':
            cmd = b'%s %s %s%s\r\n' % (rng.choice([b'gat', b'gats']),
                                       rng.choice([b'0', b'3600']), k, others)
            nr = False
        elif kind == 'store':
            v = self.inj_value()
            cmd = b'%s %s %s 0 %d%s\r\n%s\r\n' % (
                rng.choice([b'set', b'add', b'replace', b'append',
                            b'prepend']),
                k, rng.choice(FLAGS), len(v), nrs, v)
        elif kind == 'cas':
            v = self.inj_value()
            cmd = b'cas %s 0 0 %d %d%s\r\n%s\r\n' % (k, len(v),
                                                     rng.randint(1, 999), nrs,
                                                     v)
        elif kind == 'delete':
            cmd = b'delete %s%s\r\n' % (k, nrs)
        elif kind == 'arith':
            cmd = b'%s %s %d%s\r\n' % (rng.choice([b'incr', b'decr']), k,
                                       rng.randint(0, 99), nrs)
        elif kind == 'touch':
            cmd = b'touch %s %s%s\r\n' % (k, rng.choice([b'0', b'3600']), nrs)
        elif kind == 'mg':
            fl = [f for f in (b'v', b'k', b'c', b'q', b'f', b's')
                  if rng.random() < 0.4]
            if rng.random() < 0.4:
                fl.append(self.opaque())
            cmd = b'mg ' + k + self.flags_line(fl) + b'\r\n'
            nr = False
        elif kind == 'ms':
            v = self.inj_value()
            fl = [f for f in (b'q', b'k', b'c', b'T0', b'F5', b'MS', b'I')
                  if rng.random() < 0.3]
            cmd = b'ms %s %d%s\r\n%s\r\n' % (k, len(v), self.flags_line(fl), v)
            nr = False
        elif kind == 'md':
            fl = [f for f in (b'q', b'k', b'I') if rng.random() < 0.4]
            cmd = b'md ' + k + self.flags_line(fl) + b'\r\n'
            nr = False
        elif kind == 'ma':
            fl = [f for f in (b'q', b'v', b'N0', b'D5', b'MD')
                  if rng.random() < 0.4]
            cmd = b'ma ' + k + self.flags_line(fl) + b'\r\n'
            nr = False
        else:
            cmd = b'me %s\r\n' % k
            nr = False
        if nr:
            return InjUnit(cmd, b'', None, k)
        return InjUnit(cmd, marker_request(mark), mark, k)
