"""Screen-pop latency: from the AMI ``Newstate`` (Ringing) event leaving the PBX to the pop
arriving in the agent's browser stream.

Everything is real and on loopback: the loopback AMI peer (``peers/ami.py``) over TCP,
the AMI client and call tracker of the product, the recording of the call and the pop in SQLite
(WAL), the customer level read from the demo billing database, waitress serving the app, and an
HTTP client (``requests``) signed in as agent1 reading ``/calls/stream`` (Server-Sent Events,
reconnecting like a browser's EventSource). Half of the callers are billing customers (their
level is looked up), half are unknown numbers. Each call is hung up before the next rings.

Usage: .venv/bin/python bench/screen_pop.py [-n 200]      (target: p95 well under 1 s)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="calls to ring (default 200)")
    parser.add_argument("--quick", action="store_true", help="20 calls (the smoke run of make test)")
    args = parser.parse_args()
    if args.quick:
        args.n = 20
    directory = Path(tempfile.mkdtemp(prefix="kefu-bench-pop-"))
    os.environ["KEFU_DATA_DIR"] = str(directory)
    try:
        run(args.n, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(calls: int, directory: Path) -> None:
    import requests
    from waitress import create_server

    from connectors.billing import demo_data
    from engine.clock import utcnow
    from peers.ami import AmiPeer
    from web import create_app
    from web.connectors_setup import start_links
    from web.demo import create_accounts
    from web.extensions import db

    peer = AmiPeer().start()
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory / 'kefu.db'}",
                      "KEFU_BILLING_URL": f"sqlite:///{directory / 'billing.db'}", "KEFU_AMI_URL": peer.url,
                      "WTF_CSRF_ENABLED": False, "KEFU_POP_STREAM_SECONDS": 25})
    with app.app_context():
        db.create_all()
        create_accounts(db.session, utcnow())
        db.session.commit()
    demo_data.seed(app.extensions["kefu_billing"], subscribers=200, calls_per_day=0.1)
    start_links(app)
    assert app.extensions["kefu_pbx"].client().wait_connected(5), "no AMI login"
    server = create_server(app, host="127.0.0.1", port=0, threads=32)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    browser = requests.Session()
    assert browser.post(f"{base}/login", data={"username": "agent1", "password": "kefu-demo"},
                        allow_redirects=False).status_code == 302

    arrived: dict[str, float] = {}
    signal = threading.Condition()
    stop = threading.Event()
    reconnects = [0]

    def read() -> None:  # an EventSource: read, and reconnect with Last-Event-ID when the stream ends
        last = ""
        while not stop.is_set():
            headers = {"Last-Event-ID": last} if last else {}
            with browser.get(f"{base}/calls/stream", headers=headers, stream=True, timeout=60) as response:
                for line in response.iter_lines(chunk_size=1, decode_unicode=True):
                    if line.startswith("id: "):
                        last = line[4:]
                    elif line.startswith("data: "):
                        pop = json.loads(line[6:])
                        with signal:
                            arrived[pop["payload"]["call_id"]] = time.perf_counter()
                            signal.notify_all()
            reconnects[0] += 1

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.5)  # the stream is open
    latencies: list[float] = []
    missing = 0
    started = time.perf_counter()
    for i in range(calls):
        caller = f"1380000000{1 + i % 3}" if i % 2 == 0 else f"1391234{i:04d}"
        rang = time.perf_counter()
        call_id = peer.ring_inbound(caller, "8001")
        with signal:
            if not signal.wait_for(lambda: call_id in arrived, timeout=5):  # noqa: B023
                missing += 1
                continue
        latencies.append(arrived[call_id] - rang)
        peer.hangup(call_id)
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    stop.set()
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) >= 2 else ms * 99
    print(f"screen pops: {len(ms)} of {calls} delivered ({missing} missing) in {elapsed:.1f}s, "
          f"{reconnects[0]} stream reconnection(s)")
    print(f"AMI ringing event → SSE pop in the browser stream: p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, "
          f"max {ms[-1]:.1f} ms")
    app.extensions["kefu_connectors"].close()
    server.close()
    peer.stop()


if __name__ == "__main__":
    main()
