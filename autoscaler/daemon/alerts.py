"""Alerts the seed guide did by cron, done right: to the log and an optional webhook, rate-limited.

Kinds: workers FATAL, a pool at max while missing its SLO, the memory budget exhausted,
Supervisor or Redis unreachable, an invalid policy edit, a policy file gone, a pool whose
sections Supervisor refuses, the include file that cannot be written, new slots that crash
at start, workers killed at stopwaitsecs, the metrics port taken, a pool recycling leaking
workers too often, a policy edit whose new workers do not start (the old ones are kept). Each
(kind, subject) fires at most once per `interval_s`; a webhook that is slow or down never
delays a tick (a background thread posts, dropping alerts when its small queue is full).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from loguru import logger

WebhookFormat = Literal["generic", "wecom", "slack"]
AlertKind = Literal[
    "workers_fatal",
    "workers_crashing",
    "slo_missed_at_max",
    "budget_exhausted",
    "supervisor_unreachable",
    "redis_unreachable",
    "queue_unreadable",
    "policy_invalid",
    "policy_missing",
    "pool_refused",
    "apply_failed",
    "workers_crashing",
    "workers_killed",
    "metrics_unavailable",
    "recycling",
    "config_change_failed",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    kind: AlertKind
    subject: str  # the pool, or "redis" / "supervisor" / the policy file
    message: str
    at_s: float  # unix time


def webhook_body(alert: Alert, *, style: WebhookFormat, host: str) -> dict[str, Any]:
    """The JSON body for each webhook style (WeCom group robot, Slack incoming webhook)."""
    text = f"[autoscaler@{host}] {alert.kind} {alert.subject}: {alert.message}"
    if style == "wecom":
        return {"msgtype": "text", "text": {"content": text}}
    if style == "slack":
        return {"text": text}
    return {
        "kind": alert.kind,
        "subject": alert.subject,
        "message": alert.message,
        "host": host,
        "at": datetime.fromtimestamp(alert.at_s, tz=UTC).isoformat(),
    }


class Alerter:
    """Rate-limits alerts, logs them, and hands them to the webhook poster."""

    def __init__(
        self,
        *,
        interval_s: float,
        webhook_url: str | None = None,
        webhook_format: WebhookFormat = "generic",
        timeout_s: float = 5.0,
        post: Callable[[str, bytes, float], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._last_sent: dict[tuple[str, str], float] = {}
        self._host = socket.gethostname()
        self._format = webhook_format
        self._poster: _WebhookPoster | None = None
        if webhook_url:
            self._poster = _WebhookPoster(webhook_url, timeout_s, post or _http_post)
        self.sent: list[Alert] = []  # what got through the rate limit (status, tests)

    def raise_(self, alert: Alert) -> bool:
        """Emit the alert unless the same (kind, subject) fired within interval_s."""
        key = (alert.kind, alert.subject)
        last = self._last_sent.get(key)
        if last is not None and alert.at_s - last < self.interval_s:
            return False
        self._last_sent[key] = alert.at_s
        self.sent.append(alert)
        del self.sent[:-100]
        logger.bind(alert=alert.kind, subject=alert.subject).warning(
            "ALERT {}: {}: {}", alert.kind, alert.subject, alert.message
        )
        if self._poster is not None:
            body = webhook_body(alert, style=self._format, host=self._host)
            self._poster.submit(json.dumps(body).encode())
        return True

    def clear(self, kind: AlertKind, subject: str) -> None:
        """The condition ended: the next occurrence alerts at once."""
        self._last_sent.pop((kind, subject), None)

    def close(self, timeout_s: float = 5.0) -> None:
        if self._poster is not None:
            self._poster.close(timeout_s)


def _http_post(url: str, body: bytes, timeout_s: float) -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


class _WebhookPoster:
    """One background thread posting queued bodies; never blocks the caller."""

    _STOP = b""

    def __init__(self, url: str, timeout_s: float, post: Callable[[str, bytes, float], None]):
        self._url = url
        self._timeout_s = timeout_s
        self._post = post
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=50)
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    def submit(self, body: bytes) -> None:
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            logger.error("alert webhook queue full: alert dropped (is the webhook down?)")

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body == self._STOP:
                return
            try:
                self._post(self._url, body, self._timeout_s)
            except Exception as exc:
                # The URL may carry a token (WeCom `key=`): never log it.
                logger.error("alert webhook POST failed: {}", type(exc).__name__)

    def close(self, timeout_s: float) -> None:
        try:
            self._queue.put(self._STOP, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)
