"""Kefu's production web server: ``gunicorn -c gunicorn.conf.py wsgi:app`` (see README, Production).

Processes give parallelism (the GIL), threads in each process hold the long screen-pop streams
(one per open agent page, up to KEFU_POP_STREAM_SECONDS each) without blocking a process.
Ticks and connector jobs run in their own processes (``kefu scheduler``, ``kefu worker``), never in
these workers. Every setting can be changed with the environment variables below.
"""

import multiprocessing
import os

bind = os.environ.get("KEFU_BIND") or f"127.0.0.1:{os.environ.get('KEFU_PORT', '5000')}"
# Two processes per core: one runs Python while the other waits for the database.
workers = int(os.environ.get("KEFU_WORKERS") or 2 * multiprocessing.cpu_count())
worker_class = "gthread"
threads = int(os.environ.get("KEFU_THREADS") or 16)
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


def post_fork(server, worker):  # gunicorn hook, in each new worker
    from web.production import after_fork
    from wsgi import app

    after_fork(app)
