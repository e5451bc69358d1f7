"""What the agent reports: Prometheus metrics, a JSON status, health and readiness.

    GET /metrics   Prometheus text
    GET /healthz   200 while the process runs its loop
    GET /readyz    200 once OVN is synced and the last pass succeeded, else 503
    GET /status    JSON: what is advertised and why, what was refused and why, the last pass

`ovn-fabric status` reads /status and prints it as a table.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ovn_fabric.agent.reconcile import Outcome
from ovn_fabric.model import DesiredState, Reason


@dataclass
class Metrics:
    registry: CollectorRegistry
    passes: Counter
    pass_seconds: Histogram
    driver_seconds: Histogram
    changes: Counter
    failures: Counter
    advertised: Gauge
    refused: Gauge
    ovn_synced: Gauge
    last_success: Gauge

    @classmethod
    def create(cls) -> Metrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            passes=Counter("ovn_fabric_reconcile_passes", "Reconcile passes, by result",
                           ["result"], registry=r),
            pass_seconds=Histogram("ovn_fabric_reconcile_seconds", "Duration of a pass",
                                   registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1,
                                                        2.5, 5, 10)),
            driver_seconds=Histogram("ovn_fabric_driver_seconds", "Duration of a driver sync",
                                     ["driver"], registry=r,
                                     buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 5)),
            changes=Counter("ovn_fabric_driver_changes", "Operations applied, by driver",
                            ["driver"], registry=r),
            failures=Counter("ovn_fabric_driver_failures", "Driver syncs that failed",
                             ["driver"], registry=r),
            advertised=Gauge("ovn_fabric_advertised_prefixes", "Prefixes advertised",
                             ["reason"], registry=r),
            refused=Gauge("ovn_fabric_refused_addresses", "Addresses refused by the policy",
                          registry=r),
            ovn_synced=Gauge("ovn_fabric_ovn_synced", "1 once OVN's first full read is in",
                             registry=r),
            last_success=Gauge("ovn_fabric_last_success_timestamp_seconds",
                               "When the last fully successful pass finished", registry=r),
        )


def outcome_json(outcome: Outcome | None) -> dict[str, Any]:
    """The JSON form of a pass, with the desired state's exposures and refusals."""
    if outcome is None:
        return {"state": "starting"}
    desired = outcome.desired
    return {
        "state": "waiting-for-ovn" if outcome.waiting_for_ovn
        else ("ok" if outcome.ok else "degraded"),
        "last_pass": {
            "finished_at": outcome.finished_at, "seconds": round(outcome.seconds, 4),
            "triggers": str(outcome.triggers), "planned": outcome.planned,
            "drivers": [{"driver": d.driver, "changes": d.changes, "seconds": round(d.seconds, 4),
                         "failures": list(d.failures), "waiting": list(d.waiting)}
                        for d in outcome.drivers],
        },
        "advertised": [] if desired is None else _advertised(desired),
        "refused": [] if desired is None else [
            {"address": r.what, "port": r.port, "why": r.why} for r in desired.refusals],
    }


def _advertised(desired: DesiredState) -> list[dict[str, Any]]:
    draining = {route.dst for route in desired.routes if route.draining}
    return [{"prefix": str(e.prefix), "reason": str(e.reason), "port": e.port,
             "network": e.network, "rule": e.rule, "draining": e.prefix in draining}
            for e in desired.exposures]


class Status:
    """The last outcome and the metrics, updated by the loop, read by the HTTP server."""

    def __init__(self) -> None:
        self.metrics = Metrics.create()
        self._lock = threading.Lock()
        self._last: Outcome | None = None
        self._last_ok = False
        self._counted: DesiredState | None = None    # the plan the gauges were set from

    def record(self, outcome: Outcome) -> None:
        m = self.metrics
        m.passes.labels("ok" if outcome.ok else
                        ("waiting" if outcome.waiting_for_ovn else "failed")).inc()
        m.pass_seconds.observe(outcome.seconds)
        m.ovn_synced.set(0 if outcome.waiting_for_ovn else 1)
        for d in outcome.drivers:
            m.driver_seconds.labels(d.driver).observe(d.seconds)
            m.changes.labels(d.driver).inc(d.changes)
            if not d.ok:
                m.failures.labels(d.driver).inc()
        # Counting 3,000 exposures costs ~1 ms: only when the plan is another one. Every reason
        # is set, so that one whose last prefix went reads 0, not its old count.
        if outcome.desired is not None and outcome.desired is not self._counted:
            counts = dict.fromkeys(Reason, 0)
            for e in outcome.desired.exposures:
                counts[e.reason] += 1
            for reason, count in counts.items():
                m.advertised.labels(str(reason)).set(count)
            m.refused.set(len(outcome.desired.refusals))
            self._counted = outcome.desired
        if outcome.ok:
            m.last_success.set(outcome.finished_at)
        with self._lock:
            self._last, self._last_ok = outcome, outcome.ok

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._last_ok

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return outcome_json(self._last)


def serve(status: Status, host: str, port: int) -> ThreadingHTTPServer:
    """Start the HTTP endpoint in a daemon thread; returns the server (shutdown() to stop)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(status.metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif self.path == "/readyz":
                ready = status.ready
                self._send(200 if ready else 503, b"ready\n" if ready else b"not ready\n",
                           "text/plain")
            elif self.path == "/status":
                body = json.dumps(status.as_json(), indent=2).encode() + b"\n"
                self._send(200, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="status-http", daemon=True).start()
    return server
