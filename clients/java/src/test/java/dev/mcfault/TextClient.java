// A few lines of the memcached text protocol over a raw socket: Debian packages
// no memcached client for Java, and this is all the tests need to see a fault.
package dev.mcfault;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

final class TextClient implements AutoCloseable {
    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;

    /** Connects to 127.0.0.1:port; a read that waits longer than readTimeout throws. */
    TextClient(int port, Duration readTimeout) throws IOException {
        this(port, readTimeout, null);
    }

    /**
     * Connects to 127.0.0.1:port from the local address (null: the
     * kernel's choice, 127.0.0.1), so that mcfault sees that client address.
     */
    TextClient(int port, Duration readTimeout, InetAddress local) throws IOException {
        socket = local == null ? new Socket(InetAddress.getLoopbackAddress(), port)
                : new Socket(InetAddress.getLoopbackAddress(), port, local, 0);
        socket.setSoTimeout((int) readTimeout.toMillis());
        socket.setTcpNoDelay(true);
        in = socket.getInputStream();
        out = socket.getOutputStream();
    }

    TextClient(int port) throws IOException {
        this(port, Duration.ofSeconds(5));
    }

    // set <key> 0 0 <bytes>\r\n<data>\r\n  ->  one reply line (STORED, SERVER_ERROR ...)
    String set(String key, String value) throws IOException {
        byte[] v = value.getBytes(StandardCharsets.UTF_8);
        send("set " + key + " 0 0 " + v.length + "\r\n" + value + "\r\n");
        return line();
    }

    // get <key>\r\n  ->  VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n, or END\r\n
    /** The value, or null for a miss; IllegalStateException for any other reply line. */
    String get(String key) throws IOException {
        byte[] data = getBytes(key);
        return data == null ? null : new String(data, StandardCharsets.UTF_8);
    }

    // get <key>\r\n, the value's bytes as they came (no UTF-8 decoding)
    /** The value's bytes, or null for a miss; IllegalStateException for any other reply line. */
    byte[] getBytes(String key) throws IOException {
        send("get " + key + "\r\n");
        String first = line();
        if (first.equals("END")) {
            return null;
        }
        String[] t = first.split(" ");
        if (t.length < 4 || !t[0].equals("VALUE")) {
            throw new IllegalStateException("reply to get: " + first);
        }
        int n = Integer.parseInt(t[3]);
        byte[] data = in.readNBytes(n + 2);
        if (data.length < n + 2) {
            throw new EOFException("connection closed in a data block");
        }
        String end = line();
        if (!end.equals("END")) {
            throw new IllegalStateException("after the value: " + end);
        }
        return java.util.Arrays.copyOf(data, n);
    }

    /**
     * Reads until the server closes, into got; returns how the reading
     * ended: an EOFException for a FIN, the read's exception otherwise (a
     * SocketException for a reset, a SocketTimeoutException).
     */
    IOException readUntilClosed(ByteArrayOutputStream got) {
        byte[] buf = new byte[4096];
        try {
            while (true) {
                int n = in.read(buf);
                if (n < 0) {
                    return new EOFException("connection closed by the server");
                }
                got.write(buf, 0, n);
            }
        } catch (IOException e) {
            return e;
        }
    }

    /** Sends one command line and returns the reply line. */
    String command(String line) throws IOException {
        send(line + "\r\n");
        return line();
    }

    void send(String s) throws IOException {
        out.write(s.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    /** One reply line without its \r\n; EOFException when the server closed. */
    String line() throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        while (true) {
            int c = in.read();
            if (c < 0) {
                throw new EOFException("connection closed by the server");
            }
            if (c == '\n') {
                byte[] bytes = b.toByteArray();
                int n = bytes.length > 0 && bytes[bytes.length - 1] == '\r' ? bytes.length - 1
                        : bytes.length;
                return new String(bytes, 0, n, StandardCharsets.UTF_8);
            }
            b.write(c);
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
