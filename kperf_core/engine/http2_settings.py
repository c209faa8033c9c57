"""The API server's HTTP/2 stream limit, read from its SETTINGS frame.

An HTTP/2 connection carries at most the server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` streams:
kube-apiserver advertises 250 up to 1.28 and 100 since (kubernetes/kubernetes#121120, the
HTTP/2 rapid-reset mitigation; also in the 1.25-1.28 patch releases), unless
``--http2-max-streams-per-connection`` says otherwise. libcurl cannot tell the value it read, and
a stream put on a connection the server has filled waits in the client (nghttp2 holds it) until
another stream on that connection ends — for a watch, minutes. So before sizing connections for
long-lived streams, ask the server: one TLS handshake (ALPN ``h2``), the connection preface, and
the server's first frame, which HTTP/2 requires to be its SETTINGS. No request is sent, so the
API server counts nothing.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from urllib.parse import urlsplit

from kperf_core.kube import ClusterEndpoint

log = logging.getLogger(__name__)

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_SETTINGS = 0x4
_ACK = 0x1
_MAX_CONCURRENT_STREAMS = 0x3
#: an empty SETTINGS frame: the client's half of the preface
_CLIENT_SETTINGS = struct.pack(">I", 0)[1:] + bytes((_SETTINGS, 0)) + struct.pack(">I", 0)


def stream_limit_of(frames: bytes) -> int | None:
    """``SETTINGS_MAX_CONCURRENT_STREAMS`` of the server's first SETTINGS frame in ``frames``
    (what the server sent after the handshake); None when it sets none (no limit) or ``frames``
    hold no complete SETTINGS frame."""
    offset = 0
    while offset + 9 <= len(frames):
        length = int.from_bytes(frames[offset : offset + 3], "big")
        kind, flags = frames[offset + 3], frames[offset + 4]
        payload = frames[offset + 9 : offset + 9 + length]
        if len(payload) < length:
            return None
        if kind == _SETTINGS and not flags & _ACK:
            for i in range(0, length - length % 6, 6):
                identifier, value = struct.unpack(">HI", payload[i : i + 6])
                if identifier == _MAX_CONCURRENT_STREAMS:
                    return int(value)
            return None
        offset += 9 + length
    return None


def read_stream_limit(endpoint: ClusterEndpoint, timeout: float = 5.0) -> int | None:
    """The server's HTTP/2 stream limit per connection, or None when it cannot be read (not
    HTTPS, no HTTP/2, unreachable, a TLS failure): the caller then assumes a default."""
    url = urlsplit(endpoint.server)
    if url.scheme != "https" or url.hostname is None:
        return None
    context = ssl.create_default_context()
    if endpoint.insecure_skip_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif endpoint.ca_pem is not None:
        context = ssl.create_default_context(cadata=endpoint.ca_pem.decode())
    # No client certificate: the SETTINGS frame comes before any authentication matters, and
    # kube-apiserver only asks for a certificate, it does not require one.
    context.set_alpn_protocols(["h2"])
    name = endpoint.tls_server_name or url.hostname
    try:
        with (
            socket.create_connection((url.hostname, url.port or 443), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            if tls.selected_alpn_protocol() != "h2":
                return None
            tls.sendall(_PREFACE + _CLIENT_SETTINGS)
            received = b""
            while len(received) < 9 or len(received) < 9 + int.from_bytes(received[:3], "big"):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                received += chunk
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        log.info("could not read the server's HTTP/2 settings: %s", exc)
        return None
    return stream_limit_of(received)
