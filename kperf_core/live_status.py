"""Progress of a long step on stderr: a line redrawn in place on a terminal, plain lines otherwise.

Every command that runs for a while (a load run, a benchmark case, waiting for runners) reports
through a :class:`LiveStatus`, so the rule "a live line on a terminal, periodic plain lines when
stderr is a file or a pipe, nothing extra on stdout" lives here once.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

#: seconds between two plain lines when stderr is not a terminal (a log must stay readable)
PLAIN_INTERVAL = 10.0
#: seconds between two redraws of the live line (faster is flicker, not information)
LIVE_INTERVAL = 0.2


class LiveStatus:
    """Shows the latest status of a step; :meth:`update` may be called as often as wanted.

    On a terminal the line is redrawn at most every :data:`LIVE_INTERVAL` seconds; elsewhere a line
    is written at most every ``plain_interval`` seconds, each prefixed with the seconds elapsed.
    :meth:`close` ends the live line (so what follows starts on a fresh line).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        plain_interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = LIVE_INTERVAL if self.live else plain_interval
        self._clock = clock
        self.started = self._clock()
        self._last_shown: float | None = None
        self._shown_width = 0

    def elapsed(self) -> float:
        return self._clock() - self.started

    def update(self, text: str, *, force: bool = False) -> None:
        """Show ``text`` unless a line was shown less than the interval ago (``force`` shows it)."""
        now = self._clock()
        if not force and self._last_shown is not None and now - self._last_shown < self.interval:
            return
        self._last_shown = now
        if self.live:
            width = shutil.get_terminal_size((120, 24)).columns - 1
            line = text[:width]
            # pad over the rest of a longer previous line instead of emitting a terminal escape
            self.stream.write("\r" + line.ljust(self._shown_width))
            self._shown_width = len(line)
        else:
            self.stream.write(f"[{now - self.started:7.1f}s] {text}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that stays (a step finished, a warning): always shown, never overwritten."""
        if self.live and self._shown_width:
            self.stream.write("\r" + " " * self._shown_width + "\r")
            self._shown_width = 0
        self.stream.write(f"[{self.elapsed():7.1f}s] {text}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line, if one is shown."""
        if self.live and self._shown_width:
            self.stream.write("\n")
            self.stream.flush()
            self._shown_width = 0
