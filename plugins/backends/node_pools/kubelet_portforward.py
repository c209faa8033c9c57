"""The kubelet's port-forward endpoint for pods the embedded simulator executes, so
``pods/NAME/portforward`` through the apiserver reaches them as it reaches a real pod.

The apiserver forwards ``/api/v1/namespaces/N/pods/P/portforward?ports=…`` to
``https://<node>:<kubelet port>/portForward/N/P?port=…`` and, once the kubelet answers 101, pipes
bytes both ways. kperf serves the websocket flavour (subprotocol ``v4.channel.k8s.io``, what the
Kubernetes Python client speaks): per forwarded port i a data channel 2i and an error channel
2i+1, each opened by a frame carrying the port number (little-endian), then binary frames whose
first byte is the channel. SPDY (kubectl's) is answered 400. The pod side is a TCP connection to the
pod's (loopback) IP: pod proxying refuses loopback addresses, a kubelet does not.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from typing import Any, BinaryIO

PROTOCOL = "v4.channel.k8s.io"
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
_BINARY, _CLOSE, _PING, _PONG = 0x2, 0x8, 0x9, 0xA
CONNECT_TIMEOUT = 5.0


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()


def read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    """One (opcode, payload) from a client (masked frames); None at EOF. Fragments are not
    reassembled: clients send each chunk as one frame."""
    header = stream.read(2)
    if len(header) < 2:
        return None
    opcode, length = header[0] & 0x0F, header[1] & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", stream.read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", stream.read(8))
    mask = stream.read(4) if header[1] & 0x80 else b""
    payload = stream.read(length)
    if len(payload) < length:
        return None
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload


def frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked frame (server to client)."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


class PortForwardSession:
    """One upgraded connection forwarding ``port`` of a pod at ``address``."""

    def __init__(self, reader: BinaryIO, writer: Any, address: str, port: int) -> None:
        self.reader = reader
        self.writer = writer
        self.address = address
        self.port = port
        self._send_lock = threading.Lock()

    def _send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self.writer.write(frame(opcode, payload))
            self.writer.flush()

    def run(self) -> None:
        opening = struct.pack("<H", self.port)
        self._send(_BINARY, b"\x00" + opening)
        self._send(_BINARY, b"\x01" + opening)
        try:
            pod = socket.create_connection((self.address, self.port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            message = f"error forwarding port {self.port} to pod: {exc}"
            self._send(_BINARY, b"\x01" + message.encode())
            self._send(_CLOSE, struct.pack("!H", 1000))
            return
        pod.settimeout(None)
        to_client = threading.Thread(target=self._pod_to_client, args=(pod,), daemon=True)
        to_client.start()
        try:
            self._client_to_pod(pod)
        finally:
            to_client.join()
            pod.close()

    def _client_to_pod(self, pod: socket.socket) -> None:
        while True:
            try:
                received = read_frame(self.reader)
            except OSError:
                received = None
            if received is None or received[0] == _CLOSE:
                try:
                    pod.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            opcode, payload = received
            if opcode == _PING:
                self._send(_PONG, payload)
            elif opcode == _BINARY and payload[:1] == b"\x00" and len(payload) > 1:
                pod.sendall(payload[1:])

    def _pod_to_client(self, pod: socket.socket) -> None:
        try:
            while data := pod.recv(65536):
                self._send(_BINARY, b"\x00" + data)
            self._send(_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
