#!/usr/bin/env python3
"""Time to the first content byte of streamed chat completions, for bench/gateway.sh.

    ttfb.py PORT COUNT BODY

Sends COUNT streaming requests one after another over one keep-alive HTTP/1.1 connection and
times each from the request's last byte sent to the first byte of its first SSE event
("data:") received; each response is read to its end before the next request. Prints
"median_ms p99_ms count". Exits 1 on an error response or a malformed one. The client's own
cost is the same for every target, so the figures compare side by side, not absolutely.
"""
import socket
import sys
import time


def read_response(sock, buf):
    """Reads one response; returns (ttfb_ns or None, rest of buf). buf holds bytes already read."""
    t_first = None
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the headers")
        buf += chunk
        if t_first is None and b"data:" in buf.split(b"\r\n\r\n", 1)[-1] and b"\r\n\r\n" in buf:
            t_first = time.perf_counter_ns()
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    if " 200 " not in lines[0] + " ":
        raise RuntimeError("status line: " + lines[0])
    hdr = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdr[k.strip().lower()] = v.strip().lower()
    if t_first is None and b"data:" in buf:
        t_first = time.perf_counter_ns()
    if "content-length" in hdr:
        need = int(hdr["content-length"])
        while len(buf) < need:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed in the body")
            buf += chunk
            if t_first is None and b"data:" in buf:
                t_first = time.perf_counter_ns()
        return t_first, buf[need:]
    if hdr.get("transfer-encoding") != "chunked":
        raise RuntimeError("neither content-length nor chunked")
    # Chunked: walk the chunks until the last (size 0) one.
    pos = 0
    while True:
        while b"\r\n" not in buf[pos:]:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed in a chunk size")
            buf += chunk
        eol = buf.index(b"\r\n", pos)
        size = int(buf[pos:eol].split(b";")[0], 16)
        end = eol + 2 + size + 2
        while len(buf) < end:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed in a chunk")
            buf += chunk
        if t_first is None and b"data:" in buf[: end]:
            t_first = time.perf_counter_ns()
        pos = end
        if size == 0:
            return t_first, buf[end:]


def main():
    port, count, body = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times, buf = [], b""
    for _ in range(count):
        sock.sendall(req)
        t0 = time.perf_counter_ns()
        t_first, buf = read_response(sock, buf)
        if t_first is None:
            raise RuntimeError("a response without a data: event")
        times.append((t_first - t0) / 1e6)
    sock.close()
    times.sort()
    print("%.4f %.4f %d" % (times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))], len(times)))


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError, ValueError) as e:
        print("ttfb.py: " + str(e), file=sys.stderr)
        sys.exit(1)
