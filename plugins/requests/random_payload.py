"""Random object names and alphanumeric payloads, shared by the write request types."""

from __future__ import annotations

import base64
import random

_NOT_ALNUM = bytes.maketrans(b"+/=", b"AzQ")


def alphanumeric(rng: random.Random, size: int) -> str:
    """``size`` random [A-Za-z0-9] characters (upstream's payload alphabet), at C speed: base64
    of random bytes with its three non-alphanumeric symbols mapped onto letters."""
    raw = base64.b64encode(rng.randbytes(size * 3 // 4 + 3)).translate(_NOT_ALNUM)
    return raw[:size].decode()
