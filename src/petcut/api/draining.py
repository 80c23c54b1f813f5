"""SIGTERM with work in flight: every request gets a real answer before the
process exits.

:func:`drain` runs on the event loop from the first SIGTERM, alongside uvicorn's graceful shutdown
(``timeout_graceful_shutdown = shutdown_timeout_s``). Its own deadline, ``budget_s``, is a second
earlier, so nothing is left for uvicorn to cancel (a cancelled request would get uvicorn's bare
plain-text 500):

* requests waiting for the model are kept only while the work ahead of them is expected to finish
  within the budget (the running job normal-length and the queue's expected duration fitting in what
  is left); otherwise they get the JSON 503 ``draining`` (CORS, ``Retry-After``) at once;
* at the budget, whatever still waits or runs gets the same 503; the inference thread finishes its job
  unobserved and the process exits without waiting for it (see :func:`petcut.api.server.run`).
"""

from __future__ import annotations

import asyncio
import logging

from petcut.model.runtime import DRAINING_RETRY_AFTER, State
from petcut.model.runtime_errors import Unavailable
from petcut.model.runtime_worker import InferenceWorker

log = logging.getLogger("petcut.api")

POLL_S = 0.05


class Draining(Unavailable):
    """The instance is shutting down: a queued request, one still running at the drain deadline, or one the
    server's graceful-shutdown timeout cancels (the edge answers that one)."""

    code = "draining"
    default_message = "The service is shutting down; retry on another instance."

    def __init__(self) -> None:
        super().__init__(self.default_message, code=self.code, retry_after=DRAINING_RETRY_AFTER, state=State.DRAINING)


def draining_error() -> Draining:
    return Draining()


def queue_fits(worker: InferenceWorker, left_s: float) -> bool:
    """Whether the running job and everything queued behind it are expected to end within ``left_s``.
    A running job already past twice the usual duration has no estimate: the queue is not bet on it."""
    usual = max(worker.job_seconds, 0.001)
    remaining = 0.0
    if worker.in_flight:
        busy = worker.busy_for()
        if busy > 2 * usual:
            return False
        remaining = max(usual - busy, 0.0)
    return remaining + worker.depth * usual <= left_s


async def drain(worker: InferenceWorker, budget_s: float) -> None:
    """Answer waiting and running model work before ``budget_s`` seconds have passed (event loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    while (left := deadline - loop.time()) > 0:
        if worker.depth and not queue_fits(worker, left):
            refused = worker.refuse_queued(draining_error)
            log.info("draining: queued requests refused", extra={"refused": refused, "state": "draining"})
        if not worker.depth and not worker.in_flight:
            return
        await asyncio.sleep(min(POLL_S, left))
    refused = worker.refuse_queued(draining_error)
    abandoned = worker.abandon_running(draining_error)
    if refused or abandoned:
        log.warning(
            "draining deadline: unfinished requests answered 503",
            extra={"refused": refused, "abandoned": int(abandoned), "state": "draining"},
        )
