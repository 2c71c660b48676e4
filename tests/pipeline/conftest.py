"""Fixtures for pipeline tests: real resources on the session broker and engine, a real
Dagster instance, and a real HTTP receiver standing in for Slack's webhook."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import orjson
import pytest

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient, KsqlError
from cart_pipeline.pipeline import AlertWebhookResource, KafkaResource, KsqlDBResource


class WebhookReceiver:
    """A real HTTP server on loopback that records every JSON body posted to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(orjson.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def resources(kafka_bootstrap: str, ksqldb_url: str) -> dict[str, Any]:
    return {
        "kafka": KafkaResource(bootstrap_servers=kafka_bootstrap, timeout_s=20),
        "ksqldb": KsqlDBResource(url=ksqldb_url, timeout_s=30),
        "alerts": AlertWebhookResource(url=None),
    }


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def reset_pipeline_objects(kafka_bootstrap: str, ksqldb_url: str) -> None:
    """The pipeline's names are fixed (its .sql files); start each module from nothing."""
    with KsqlClient(ksqldb_url, timeout=30) as ksql:
        for statement in (
            "DROP TABLE IF EXISTS current_shopping_cart DELETE TOPIC;",
            "DROP STREAM IF EXISTS shopping_cart_events;",
        ):
            try:
                ksql.execute(statement)
            except KsqlError as exc:  # pragma: no cover - surfaced with context
                raise AssertionError(f"could not reset: {exc}") from exc
    Topics(KafkaSettings(kafka_bootstrap)).delete("shopping_cart_events")
