"""The deadline watchdog: one daemon thread that shuts down requests past their deadline.

`requests`' timeout bounds each socket operation, not a whole answer (`http.session`); the
sessions register each request's deadline here and this thread ends the sockets of those
that outlast it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tap_botpenguin.http.session import Deadline


class Watchdog:
    """Watches every session's deadlines (thread-safe; its thread starts with the first)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._active: set[Deadline] = set()
        self._thread: threading.Thread | None = None

    def start(self, deadline: Deadline) -> None:
        """On a sending thread: watch `deadline` from now on."""
        with self._lock:
            self._active.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            self._lock.notify()

    def finish(self, deadline: Deadline) -> None:
        """On a sending thread: the request ended."""
        with self._lock:
            self._active.discard(deadline)
            deadline.connections.clear()

    def watch(self, deadline: Deadline, connection: Any) -> None:
        """On a sending thread: shut `connection` down with its request's deadline."""
        with self._lock:
            deadline.connections.append(connection)
            if deadline.expired:
                deadline.shut()

    def _run(self) -> None:
        """On the `deadlines` thread, for the rest of the process."""
        with self._lock:
            while True:
                now = time.monotonic()
                for deadline in [d for d in self._active if d.at <= now]:
                    deadline.shut()
                    self._active.discard(deadline)
                soonest = min((d.at for d in self._active), default=None)
                self._lock.wait(None if soonest is None else soonest - now)


#: One watchdog thread for the process, whatever the number of runs (tests run many).
WATCHDOG = Watchdog()
