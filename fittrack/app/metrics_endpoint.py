"""FITTRACK_METRICS_LISTEN: the Prometheus endpoint every process role serves, and the instruments behind it."""

from __future__ import annotations

import logging
import threading

import prometheus_client
from prometheus_client import CollectorRegistry, start_http_server

from fittrack.app.config import Config
from fittrack.app.setting_values import parse_listen
from fittrack.core.adapters.instruments import NO_INSTRUMENTS, Instruments

log = logging.getLogger("fittrack.metrics")


class CannotExport(Exception):
    """The endpoint cannot listen where FITTRACK_METRICS_LISTEN says; the message names the setting."""


class MetricsEndpoint:
    """GET /metrics over plain HTTP on its own thread, from the process's own registry."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        self.listen = listen
        self._host, self._port = parse_listen(listen, "FITTRACK_METRICS_LISTEN")
        self._registry = registry
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> int:
        """Listen and serve; the port (the one picked when the setting's is 0). CannotExport when it cannot listen."""
        try:
            self._server, self._thread = start_http_server(self._port, self._host, self._registry)
        except OSError as error:
            raise CannotExport(
                f"cannot listen on {self.listen} for metrics: {error.strerror or error}; "
                "set FITTRACK_METRICS_LISTEN to a free address of this machine (port 0 picks a free one), "
                "or leave it unset for no metrics"
            ) from None
        host = self._host if ":" not in self._host else f"[{self._host}]"
        log.info("metrics: GET http://%s:%d/metrics", host, self.port)
        return self.port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def instruments_for(config: Config) -> tuple[Instruments, MetricsEndpoint | None]:
    """The process's instruments and their endpoint (not started yet); no-op instruments and None when off."""
    if not config.metrics_listen:
        return NO_INSTRUMENTS, None
    # Without it every counter and histogram also exports a `_created` series: twice the lines to scrape and
    # store, for a start time Prometheus does not use (it detects counter resets itself).
    prometheus_client.disable_created_metrics()
    registry = CollectorRegistry()
    return Instruments(registry), MetricsEndpoint(config.metrics_listen, registry)
