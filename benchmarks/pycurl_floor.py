"""The floor under kperf's engine: a bare pycurl loop with no kperf code, same design and options.

What kperf's engine costs per request beyond libcurl itself is the engine's CPU per request minus
this loop's (see README "Performance" and benchmarks/results/2026-11-29-engine-profile.txt). It runs
against a control plane that ``kperf local up --dir DIR --no-controllers`` started, and GETs the
object ``engine_vs_c_tools.py`` creates (run that, or create a ConfigMap ``kperf-bench-small`` in
``default``)::

    .venv/bin/python benchmarks/pycurl_floor.py --state-dir DIR [--requests N] [--http2]
    valgrind --tool=callgrind .venv/bin/python benchmarks/pycurl_floor.py --state-dir DIR -n 2000
    # … and -n 6000: the difference / 4000 is the instructions per request, start-up cancelled

The loop is kperf's (libcurl's multi_socket interface driven by epoll, ``CLIENT`` easy handles
re-added as they finish, a Python write callback that counts bytes, the status read per request)
and so are the options (CA, Accept and Authorization headers, TCP_NODELAY, User-Agent,
Accept-Encoding gzip, a timeout, no proxy lookup); ``--bare-options`` drops the last four groups to
show what they cost.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time
from pathlib import Path

import pycurl

PATH = "/api/v1/namespaces/default/configmaps/kperf-bench-small?resourceVersion=0&timeout=1m0s"
CLIENT = 10  # in flight, as in engine_vs_c_tools.py
H2_CONNS = 2
EPOLL_FOR = {
    pycurl.POLL_IN: select.EPOLLIN,
    pycurl.POLL_OUT: select.EPOLLOUT,
    pycurl.POLL_INOUT: select.EPOLLIN | select.EPOLLOUT,
}


class Loop:
    def __init__(self, epoll: select.epoll) -> None:
        self.epoll = epoll
        self.masks: dict[int, int] = {}
        self.received = 0

    def on_socket(self, what: int, fd: int, _multi: object, _data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            if self.masks.pop(fd, None) is not None:
                try:
                    self.epoll.unregister(fd)
                except OSError:
                    pass  # closed already
            return
        mask = EPOLL_FOR[what]
        if fd in self.masks:
            self.epoll.modify(fd, mask)
        else:
            self.epoll.register(fd, mask)
        self.masks[fd] = mask

    def count(self, chunk: bytes) -> None:
        self.received += len(chunk)


def handle(args: argparse.Namespace, state: dict[str, str], ca: bytes, loop: Loop) -> pycurl.Curl:
    c = pycurl.Curl()
    c.setopt(pycurl.URL, state["server"].rstrip("/") + args.path)
    c.setopt(pycurl.CAINFO_BLOB, ca)
    c.setopt(
        pycurl.HTTPHEADER,
        ["Accept: application/json, */*", f"Authorization: Bearer {state['token']}"],
    )
    c.setopt(pycurl.WRITEFUNCTION, loop.count)
    c.setopt(pycurl.NOSIGNAL, 1)
    c.setopt(pycurl.PROXY, "")
    if args.http2:
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
        c.setopt(pycurl.PIPEWAIT, 1)
    else:
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    if not args.bare_options:
        c.setopt(pycurl.TCP_NODELAY, 1)
        c.setopt(pycurl.USERAGENT, "kperf")
        c.setopt(pycurl.ACCEPT_ENCODING, "gzip")
        c.setopt(pycurl.TIMEOUT_MS, 60_000)
    return c


def run(args: argparse.Namespace) -> str:
    state = json.loads((args.state_dir / "state.json").read_text())
    ca = (args.state_dir / "pki" / "ca.crt").read_bytes()
    loop = Loop(select.epoll())
    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_SOCKETFUNCTION, loop.on_socket)
    if args.http2:
        multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, H2_CONNS)
        multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, CLIENT // H2_CONNS)
    else:
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, CLIENT)
    sent = done = failed = 0
    for _ in range(min(CLIENT, args.requests)):
        multi.add_handle(handle(args, state, ca, loop))
        sent += 1
    start, cpu_start = time.perf_counter(), time.process_time()
    while done < args.requests:
        timer_ms = multi.timeout()
        wait = 0.05 if timer_ms < 0 else min(timer_ms / 1000, 0.05)
        for fd, mask in loop.epoll.poll(wait):
            flags = pycurl.CSELECT_IN if mask & select.EPOLLIN else 0
            if mask & select.EPOLLOUT:
                flags |= pycurl.CSELECT_OUT
            multi.socket_action(fd, flags)
        if timer_ms >= 0:
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        queued = 1
        while queued:
            queued, ok, errors = multi.info_read()
            for c in [*ok, *(e[0] for e in errors)]:
                failed += c.getinfo(pycurl.RESPONSE_CODE) != 200
                multi.remove_handle(c)
                done += 1
                if sent < args.requests:
                    multi.add_handle(c)
                    sent += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return (
        f"{done} requests ({failed} not 200), {done / elapsed:.0f} req/s, "
        f"CPU {cpu / done * 1e6:.1f} µs/request, {loop.received / done:.0f} B/response"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="a `kperf local up --dir`")
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("--http2", action="store_true", help="2 connections of 5 streams")
    parser.add_argument("--path", default=PATH, help="what to GET (default: the small ConfigMap)")
    parser.add_argument("--bare-options", action="store_true", help="without kperf's options")
    args = parser.parse_args(argv)
    if not (args.state_dir / "state.json").is_file():
        parser.error(f"{args.state_dir}: no state.json (start one with `kperf local up --dir`)")
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
