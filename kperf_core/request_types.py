"""The contract a request type implements: one key users write under ``requests:`` in a profile.

A request type is a class with two class attributes and one method:

* ``name`` — the profile key (``staleList``, ``quorumList``, ``watch``, ``patch``, …);
* ``config_type`` — a frozen attrs class describing the mapping under that key; the profile loader
  structures the YAML into it (unknown keys rejected, every problem reported with its YAML path);
* :meth:`RequestType.build` — turn the config into one :class:`WireRequest`, the exact bytes-level
  description of what goes to the API server and under which metrics key it is counted.

How the engine consumes the response is part of the :class:`WireRequest` (``response``), so a new
kind of response handling (a watch stream, pagination) is a property of the request type, not a
new hook.
"""

from __future__ import annotations

import abc
import enum
import random
from typing import Any, ClassVar

import attrs


class ResponseHandling(enum.Enum):
    """What the engine does with a response body."""

    #: Read the whole body, count its bytes. GET, LIST, PUT, PATCH, POST, DELETE, pod logs.
    DRAIN = "drain"
    #: Read a stream chunk by chunk and hand each chunk to :meth:`RequestType.on_stream_chunk`
    #: until it says the request is complete (watch, streaming list).
    STREAM = "stream"
    #: Read the body and ask :meth:`RequestType.next_page` for a follow-up request (LIST with
    #: ``continue`` tokens); the pages count as one request under one metrics key.
    PAGINATE = "paginate"


@attrs.frozen
class WireRequest:
    """One HTTP request as it reaches the API server, plus how it is measured.

    ``metrics_key`` is upstream's ``"<METHOD> <masked URL>"`` — e.g. ``"LIST /api/v1/pods"`` or
    ``"PATCH /api/v1/namespaces/default/configmaps/:name"`` — so random object names do not
    explode the number of keys.
    """

    method: str
    path: str
    metrics_key: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    response: ResponseHandling = ResponseHandling.DRAIN


class RequestType(abc.ABC):
    """Base class of every request type, built-in or third-party.

    Subclasses set :attr:`name` and :attr:`config_type` and implement :meth:`build`. One instance
    is made per profile entry, holding that entry's validated config.
    """

    #: The key users write in a profile's ``requests:`` item, e.g. ``staleList``.
    name: ClassVar[str]
    #: Frozen attrs class the YAML mapping under :attr:`name` is structured into.
    config_type: ClassVar[type[Any]]

    def __init__(self, config: Any) -> None:
        self.config = config

    @abc.abstractmethod
    def build(self, rng: random.Random) -> WireRequest:
        """Return the next request to send. ``rng`` is the run's seeded random source."""

    def on_stream_chunk(self, state: Any, chunk: bytes) -> bool:
        """For ``ResponseHandling.STREAM``: consume one chunk; return True when done."""
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def next_page(self, request: WireRequest, body: bytes) -> WireRequest | None:
        """For ``ResponseHandling.PAGINATE``: the request for the next page, or None."""
        return None
