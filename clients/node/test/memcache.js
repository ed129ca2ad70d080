// A few lines of memcached text protocol over a raw socket (net.connect):
// no memcached client is packaged for Node, and the tests need to see the
// bytes a fault produces, a closed connection and a reply that never comes.

import net from 'node:net';

const HOST = '127.0.0.1';

// Where the reply at the start of buf ends, or -1 while it is incomplete:
// "VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n" blocks, then the
// first other line (END, STORED, SERVER_ERROR ..., ...) ends it.
function replyEnd(buf) {
    let pos = 0;
    for (;;) {
        const eol = buf.indexOf('\r\n', pos);
        if (eol < 0) {
            return -1;
        }
        const line = buf.subarray(pos, eol).toString('latin1');
        if (!line.startsWith('VALUE ')) {
            return eol + 2;
        }
        const bytes = Number(line.split(' ')[3]);
        pos = eol + 2 + bytes + 2;
        if (buf.length < pos) {
            return -1;
        }
    }
}

/** One client connection to a memcached (or an mcfault in front of one). */
export class Memcache {
    #sock;
    #buf = Buffer.alloc(0);
    #closed = false;
    #wake = null;

    static connect(port) {
        return new Promise((resolve, reject) => {
            const sock = net.connect({ host: HOST, port });
            sock.once('connect', () => resolve(new Memcache(sock)));
            sock.once('error', reject);
        });
    }

    constructor(sock) {
        this.#sock = sock;
        sock.on('data', (d) => {
            this.#buf = Buffer.concat([this.#buf, d]);
            this.#wake?.();
        });
        const gone = () => {
            this.#closed = true;
            this.#wake?.();
        };
        sock.on('close', gone);
        sock.on('error', gone);
    }

    /**
     * Sends command (string or bytes) and waits for one reply. Resolves to
     * { reply, closed, timedOut, ms }: reply is the reply text (latin1),
     * closed whether the server closed the connection before a whole reply,
     * timedOut whether none came within timeoutMs.
     */
    async request(command, { timeoutMs = 3000 } = {}) {
        const start = performance.now();
        this.#sock.write(command);
        const deadline = start + timeoutMs;
        for (;;) {
            const end = replyEnd(this.#buf);
            const done = (o) => ({ ms: performance.now() - start, ...o });
            if (end >= 0) {
                const reply = this.#buf.subarray(0, end).toString('latin1');
                this.#buf = this.#buf.subarray(end);
                return done({ reply, closed: false, timedOut: false });
            }
            if (this.#closed) {
                return done({ reply: this.#buf.toString('latin1'),
                    closed: true, timedOut: false });
            }
            const left = deadline - performance.now();
            if (left <= 0) {
                return done({ reply: this.#buf.toString('latin1'),
                    closed: false, timedOut: true });
            }
            await new Promise((resolve) => {
                const t = setTimeout(resolve, left);
                this.#wake = () => {
                    clearTimeout(t);
                    resolve();
                };
            });
            this.#wake = null;
        }
    }

    async set(key, value, opts) {
        const v = Buffer.from(value);
        return (await this.request(Buffer.concat([
            Buffer.from(`set ${key} 0 0 ${v.length}\r\n`), v,
            Buffer.from('\r\n')]), opts)).reply;
    }

    /** The value of key, null on a miss, or the error line as thrown. */
    async get(key, opts) {
        const r = await this.request(`get ${key}\r\n`, opts);
        if (r.reply === 'END\r\n') {
            return null;
        }
        const m = /^VALUE \S+ \d+ \d+\r\n([^]*)\r\nEND\r\n$/.exec(r.reply);
        if (m === null) {
            throw new Error(`get ${key}: ${JSON.stringify(r)}`);
        }
        return m[1];
    }

    close() {
        this.#sock.destroy();
    }
}

/** Connects, runs fn(conn), closes. */
export async function withConn(port, fn) {
    const c = await Memcache.connect(port);
    try {
        return await fn(c);
    } finally {
        c.close();
    }
}
