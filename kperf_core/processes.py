"""Background processes kperf starts and must be able to stop later, from another invocation.

A :class:`PidFile` records a process's pid together with its kernel start time the moment it
starts, so a later ``stop`` (also after a crash of the command that started it) signals exactly
that process and never a recycled pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


def proc_start_time(pid: int) -> str | None:
    """The process start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields after the command name
    if fields[0] == "Z":
        return None
    return fields[19]  # field 22 of /proc/PID/stat


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


class PidFile:
    """One background process, known by the file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def spawn(self, argv: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` in its own session (it outlives this command; a Ctrl-C in the user's
        terminal does not reach it), output appended to ``log_path``; record it; return its pid."""
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else dict(env),
            )
        self.path.write_text(json.dumps({"pid": proc.pid, "start": proc_start_time(proc.pid)}))
        return proc.pid

    def live_pid(self) -> int | None:
        """The recorded process's pid while it runs, else None."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        pid = int(record["pid"])
        started = proc_start_time(pid)
        if started is None or started != record.get("start"):
            _reap(pid)
            return None
        return pid

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; forget the process."""
        pid = self.live_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.live_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.live_pid() is not None:
                os.kill(pid, signal.SIGKILL)
                while self.live_pid() is not None:
                    time.sleep(0.05)
        self.path.unlink(missing_ok=True)
