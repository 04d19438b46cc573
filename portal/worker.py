"""RQ workers that run every job inside the portal's app context.

The worker provides the context, not the job body, so job functions in jobs/ stay plain
functions that take ids (conventions §13-14).
"""
from __future__ import annotations

from flask import Flask
from rq import SimpleWorker, Worker
from rq.defaults import DEFAULT_WORKER_TTL

from .extensions import db

# How long a worker may go without a heartbeat before Background jobs says it is not answering: an idle worker beats
# every WORKER_TTL_S - 15 s (its blocking wait for jobs), a busy one every 30 s. Kept at RQ's default: a shorter one
# makes the worker leave that wait more often, and RQ's worker quits on a Redis error met outside it (a Redis restart
# then stopped `flask dev`).
WORKER_TTL_S = DEFAULT_WORKER_TTL


# How long the thread that listens for RQ's commands (stop a job, shut down) waits for one at a time. RQ asks for 60 s;
# once the worker has unsubscribed, redis-py's thread then sleeps that long before it sees it should stop, and RQ joins
# it: a worker ending (a burst run, a SIGTERM, `flask dev` restarting one) sometimes took a whole minute.
COMMAND_WAIT_S = 1


class _PromptStopMixin:
    def subscribe(self):  # noqa: D102 - RQ hook: RQ's own, with a short wait (COMMAND_WAIT_S)
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=COMMAND_WAIT_S, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)


class _AppContextMixin:
    app: Flask

    def perform_job(self, job, queue):  # noqa: D102 - RQ hook
        with self.app.app_context():
            try:
                return super().perform_job(job, queue)
            finally:
                db.session.remove()


class AppWorker(_PromptStopMixin, _AppContextMixin, Worker):
    """The production worker: forks a work horse per job."""

    def main_work_horse(self, job, queue):  # noqa: D102 - RQ hook
        # Connections inherited through fork() must not be shared with the parent.
        with self.app.app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)


class AppSimpleWorker(_PromptStopMixin, _AppContextMixin, SimpleWorker):
    """A worker that runs jobs in its own process: used by tests and `--burst --simple`."""


def make_worker(app: Flask, queues: list[str], *, simple: bool = False, connection=None, name: str | None = None):
    """Build a worker bound to `app` listening on `queues`."""
    from .queue import get_redis

    cls = AppSimpleWorker if simple else AppWorker
    conn = connection or get_redis(app)
    worker = cls(queues, connection=conn, name=name, worker_ttl=WORKER_TTL_S)
    worker.app = app
    return worker
