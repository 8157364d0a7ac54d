"""The threads that ask for a window's pages at once (`listing.ahead` decides when).

Daemon threads, unlike `ThreadPoolExecutor`'s, do not hold a stopped run's exit until the
requests they are in (a rate-limit wait, a timeout, retries) are over. Each thread has its
own `PageClient` (and so its own HTTP session); their traffic is taken by the listing's
reading thread once a window has been answered, while the threads wait for the next one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait

from tap_botpenguin.http.client import PageClient, Traffic
from tap_botpenguin.http.responses import Page

_Task = tuple[Future[Page], int]


class WindowThreads:
    """`count` page threads of one listing, each with its own client from `new_client`."""

    def __init__(self, count: int, new_client: Callable[[], PageClient]) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._clients = [new_client() for _ in range(count)]
        for number, client in enumerate(self._clients):
            threading.Thread(
                target=self._work, args=(client,), name=f"page-{number}", daemon=True
            ).start()

    def send_all(self, numbers: Sequence[int]) -> list[Page | BaseException]:
        """On the reading thread: each page's answer or error, once every one has ended."""
        futures: list[Future[Page]] = []
        for number in numbers:
            future: Future[Page] = Future()
            self._tasks.put((future, number))
            futures.append(future)
        wait(futures)
        return [future.exception() or future.result() for future in futures]

    def take_traffic(self) -> Traffic:
        """On the reading thread, between windows (the threads are idle then)."""
        traffic = Traffic()
        for client in self._clients:
            traffic.add(client.take_traffic())
        return traffic

    def close(self) -> None:
        """On the reading thread: no more windows; each thread ends after its request."""
        for _ in self._clients:
            self._tasks.put(None)

    def _work(self, client: PageClient) -> None:
        """On a `page-N` thread: send the pages it is given until closed."""
        try:
            while (task := self._tasks.get()) is not None:
                future, number = task
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(client.send(number))
                    except BaseException as error:  # raised where the page is used
                        future.set_exception(error)
        finally:
            client.close()
