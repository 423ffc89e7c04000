"""Kefu's production web server: ``gunicorn -c gunicorn.conf.py wsgi:app`` (see README, Production).

Processes give parallelism (the GIL), threads in each process hold the long screen-pop streams
(one per open agent page, up to KEFU_POP_STREAM_SECONDS each) without blocking a process, the
processes share new connections out evenly (``web/gunicorn_worker.py``), and admission control
(``web/admission.py``, KEFU_API_CONCURRENCY, 2 by default) lets only K ordinary requests of a
process run at once, so that they do not take turns on the GIL (streams bypass it).
Ticks and connector jobs run in their own processes (``kefu scheduler``, ``kefu worker``), never in
these workers. Every setting can be changed with the environment variables below.
"""

import gc
import multiprocessing
import os

from web import gunicorn_worker
from web.admission import concurrency_from
from web.gunicorn_worker import child_exit  # noqa: F401  (a gunicorn hook)

bind = os.environ.get("KEFU_BIND") or f"127.0.0.1:{os.environ.get('KEFU_PORT', '5000')}"
# Two processes per core: one runs Python while the other waits for the database.
workers = int(os.environ.get("KEFU_WORKERS") or 2 * multiprocessing.cpu_count())
# gthread (threads hold the streams) that shares new connections out evenly among the processes.
worker_class = "web.gunicorn_worker.BalancedThreadWorker"
threads = int(os.environ.get("KEFU_THREADS") or 16)
# Ordinary (non-stream) requests running at once per process; read here so that a bad value stops
# the master at start, not each worker. 0: no limit.
api_concurrency = concurrency_from(os.environ.get("KEFU_API_CONCURRENCY"))
# Build the app once in the master (one secret-key file, one set of bundled diagrams read), fork.
preload_app = True
keepalive = 5
timeout = 60  # a worker silent this long is restarted (gthread workers report while streams run)
graceful_timeout = 30
max_requests = int(os.environ.get("KEFU_MAX_REQUESTS") or 0)  # e.g. 10000 to recycle workers
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("KEFU_ACCESS_LOG") or None  # "-" for stdout
errorlog = "-"
proc_name = "kefu"


def pre_fork(server, worker):  # gunicorn hook, in the master before each fork
    # The app's objects, built once in the master, move out of the collector's reach: a worker's
    # full collections no longer scan them (~0.1-0.3 s each) nor copy their pages on write.
    gc.freeze()
    gunicorn_worker.pre_fork(server, worker)


def post_fork(server, worker):  # gunicorn hook, in each new worker
    from web.admission import limit_admission
    from web.production import after_fork
    from wsgi import app

    after_fork(app)
    limit_admission(app, api_concurrency)  # this process's own semaphore
