"""The floor of a fan-out on this machine: the CPU of one ``send`` of a frame to each of many loopback TCP sockets
from a bare Python loop (no server, no websocket), what ``bench/dashboards.py``'s servers are compared with.

A reader process accepts the sockets and drains them (one epoll loop, no parsing); the writer (this process's
thread) sends ``size`` bytes to each socket, one update at a time (the next once the reader has had all of the
last), and counts its own thread's CPU (user and system, ``RUSAGE_THREAD``: on loopback the system part includes
the receiving side's TCP, run in the sender's ``sendto``, as it does for the servers). Alone:

    python bench/send_floor.py [--sockets 1000,5000] [--updates 100] [--size 300]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import selectors
import socket
from multiprocessing.connection import Connection


def drain(listener: socket.socket, count: int, size: int, pipe: Connection) -> None:
    """Accept ``count`` sockets, then read until told to stop, reporting each update (``count * size`` bytes)."""
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock, _ = listener.accept()
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    selector.register(pipe.fileno(), selectors.EVENT_READ, "pipe")
    pipe.send("ready")
    received, update = 0, count * size
    while True:
        for key, _ in selector.select():
            if key.data == "pipe":
                pipe.recv()
                return
            received += len(key.fileobj.recv(1 << 16))  # type: ignore[union-attr]
        while received >= update:
            received -= update
            pipe.send("update")


def floor(sockets: int, updates: int, size: int) -> tuple[float, float]:
    """The writer's user and system CPU per update (ms) of ``updates`` sends of ``size`` bytes to ``sockets``."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=sockets)
    ours, theirs = multiprocessing.Pipe()
    reader = multiprocessing.Process(target=drain, args=(listener, sockets, size, theirs))
    reader.start()
    port = listener.getsockname()[1]
    socks = []
    for _ in range(sockets):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
    assert ours.recv() == "ready"
    data = b"\x81\x7e" + (size - 4).to_bytes(2, "big") + b"x" * (size - 4)  # a text frame of ``size`` bytes
    before = resource.getrusage(resource.RUSAGE_THREAD)
    for _ in range(updates):
        for sock in socks:
            sock.send(data)
        assert ours.recv() == "update"
    after = resource.getrusage(resource.RUSAGE_THREAD)
    ours.send("stop")
    reader.join(30)
    for sock in socks:
        sock.close()
    listener.close()
    return ((after.ru_utime - before.ru_utime) / updates * 1000, (after.ru_stime - before.ru_stime) / updates * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", default="1000,5000", help="comma-separated socket counts")
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--size", type=int, default=300, help="bytes a frame (126 to 65535)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    counts = [int(n) for n in args.sockets.split(",")]
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2 * max(counts) + 1024)), hard))
    for count in counts:
        user, system = floor(count, args.updates, args.size)
        print(f"{count:6d} sockets, {args.size} B a frame: {user + system:7.2f} ms per update "
              f"({(user + system) * 1000 / count:.2f} ms per 1,000 sockets; user {user * 1000 / count:.2f}, "
              f"system {system * 1000 / count:.2f})")


if __name__ == "__main__":
    main()
