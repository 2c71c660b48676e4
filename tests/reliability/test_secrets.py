"""Issue #7, scenario 8: secrets never appear in logs, metadata or error messages.

Distinctive canary values stand in for the SASL password, the ksqlDB password and the webhook
URL, set the way users set them (environment variables, read as ``dg.EnvVar``). Then real
failures and successes run — a SASL broker refusing a wrong password, an unreachable broker, a
ksqlDB that answers 401, a webhook that answers 500 — and everything they could print is
scanned: stdout/stderr at the file-descriptor level (librdkafka logs there), Python logging,
every Dagster event of every run (metadata, failure descriptions, stack traces, run config,
job snapshots), the strings and tracebacks of raised errors, and the objects' reprs.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from cart_pipeline.embedded import process as proc
from cart_pipeline.kafka_io import KafkaIOError, KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient, KsqlError
from cart_pipeline.ksql._config import settings_from_env
from cart_pipeline.pipeline import ASSETS, data_quality_alerts, resources_from_env
from cart_pipeline.pipeline.resources import AlertDeliveryError, AlertWebhookResource
from tests.conftest import EngineProcess
from tests.pipeline.conftest import reset_pipeline_objects
from tests.sasl_broker import sasl_plain_broker

pytestmark = pytest.mark.timeout(400)

_TAG = uuid.uuid4().hex[:10]
KAFKA_USER, KSQL_USER = "alice", "ksql-key"
KAFKA_RIGHT = f"CanaryKafkaRight{_TAG}"  # the broker's real password for alice
KAFKA_WRONG = f"CanaryKafkaWrong{_TAG}"
KSQL_PASSWORD = f"CanaryKsql{_TAG}"
HOOK_TOKEN = f"CanaryHook{_TAG}"
#: Every form a secret could leak in: as is, and as the Basic auth header carries it.
CANARIES = (
    KAFKA_RIGHT,
    KAFKA_WRONG,
    KSQL_PASSWORD,
    HOOK_TOKEN,
    base64.b64encode(f"{KSQL_USER}:{KSQL_PASSWORD}".encode()).decode(),
)


def leaks(sources: dict[str, str]) -> list[str]:
    return [
        f"{name}: ...{text[max(0, text.find(c) - 120) : text.find(c) + 40]}..."
        for name, text in sources.items()
        for c in CANARIES
        if c in text
    ]


def error_texts(name: str, exc: BaseException) -> dict[str, str]:
    """str, repr and the whole chained traceback of an error."""
    return {
        f"{name} str": str(exc),
        f"{name} repr": repr(exc),
        f"{name} traceback": "".join(traceback.format_exception(exc)),
    }


def dagster_texts(instance: dg.DagsterInstance) -> dict[str, str]:
    """Everything the instance stored: runs (config, tags), job snapshots, every event."""
    out: dict[str, str] = {}
    for run in instance.get_runs():
        out[f"run {run.run_id}"] = dg.serialize_value(run)
        if run.job_snapshot_id:
            snapshot = instance.get_job_snapshot(run.job_snapshot_id)
            out[f"job snapshot {run.run_id}"] = dg.serialize_value(snapshot)
        for i, entry in enumerate(instance.all_logs(run.run_id)):
            out[f"event {run.run_id}#{i}"] = dg.serialize_value(entry)
    return out


def captured(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> dict:
    out, err = capfd.readouterr()
    logged = "\n".join(f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    return {"stdout": out, "stderr": err, "logging": logged + caplog.text}


def failure_description(result: dg.ExecuteInJobResult) -> str:
    failures = result.get_step_failure_events()
    assert failures, "the run was expected to fail"
    data = failures[0].step_failure_data
    user = data.user_failure_data
    return (user.description if user else None) or (data.error.message if data.error else "")


@pytest.fixture(autouse=True)
def everything_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP server answering every request with ``status`` and ``body``, recording
    request paths and Authorization headers (to prove the secrets were really in play)."""

    def __init__(self, status: int, body: bytes = b"") -> None:
        self.status, self.body = status, body
        self.paths: list[str] = []
        self.auth: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.paths.append(self.path)
                recorder.auth.append(self.headers.get("Authorization", ""))
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recorder.body)))
                self.end_headers()
                self.wfile.write(recorder.body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def recorder_401() -> Iterator[Recorder]:
    """What ksqlDB answers a wrong API key with."""
    body = b'{"@type":"generic_error","error_code":40100,"message":"Unauthorized"}'
    server = Recorder(401, body)
    yield server
    server.close()


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second real broker with a SASL/PLAIN listener where alice's password is
    ``KAFKA_RIGHT``; its plain listener serves only the launcher's readiness probe."""
    with sasl_plain_broker(tmp_path_factory.mktemp("sasl-kafka"), {KAFKA_USER: KAFKA_RIGHT}) as at:
        yield at


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def kafka_env(monkeypatch: pytest.MonkeyPatch, bootstrap: str, password: str) -> None:
    set_env(
        monkeypatch,
        CART_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        CART_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        CART_KAFKA_SASL_USERNAME=KAFKA_USER,
        CART_KAFKA_SASL_PASSWORD=password,
        CART_KAFKA_TIMEOUT_S="8",
    )


def ksql_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    set_env(
        monkeypatch,
        CART_KSQLDB_URL=url,
        CART_KSQLDB_USERNAME=KSQL_USER,
        CART_KSQLDB_PASSWORD=KSQL_PASSWORD,
        CART_KSQLDB_TIMEOUT_S="10",
    )


def materialize(instance: dg.DagsterInstance, selection: list[str]) -> dg.ExecuteInJobResult:
    """The pipeline's own assets with the resources the code location builds from the env."""
    config = {"ops": {"cart_events_load": {"config": {"events": 500, "seed": 3}}}}
    return dg.materialize(
        ASSETS,
        resources=resources_from_env(),
        instance=instance,
        selection=selection,
        run_config=config if "cart_events_load" in selection else {},
        raise_on_error=False,
    )


def test_resource_and_settings_reprs_mask_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka_env(monkeypatch, "127.0.0.1:9", KAFKA_RIGHT)
    ksql_env(monkeypatch, "http://127.0.0.1:9")
    monkeypatch.setenv("CART_ALERT_WEBHOOK_URL", f"https://hooks.example/services/{HOOK_TOKEN}")
    texts: dict[str, str] = {}
    for name, resource in resources_from_env().items():
        resolved = resource.process_config_and_initialize()  # as an asset receives it
        texts.update(
            {
                f"{name} repr": repr(resource),
                f"{name} resolved repr": repr(resolved),
                f"{name} resolved str": str(resolved),
            }
        )
        if name == "kafka":
            settings = resolved.settings()  # type: ignore[attr-defined]
            assert settings.client_config()["sasl.password"] == KAFKA_RIGHT  # in play
            texts.update(
                {
                    "settings repr": repr(settings),
                    "settings str": str(settings),
                    "settings describe": str(settings.describe()),
                }
            )
        if name == "ksqldb":
            with resolved.client() as client:  # type: ignore[attr-defined]
                texts["client repr"] = repr(client)
            texts["env settings repr"] = repr(settings_from_env(os.environ))
        if name == "alerts":
            assert HOOK_TOKEN in (resolved.url or "")  # type: ignore[attr-defined]
    assert not leaks(texts), leaks(texts)


def test_kafka_password_never_printed(
    sasl_broker: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts: dict[str, str] = {}
    with dg.DagsterInstance.ephemeral() as instance:
        # Success: the right password creates the topic and commits a load over SASL.
        kafka_env(monkeypatch, sasl_broker, KAFKA_RIGHT)
        for asset in ("shopping_cart_events_topic", "cart_events_load"):
            ok = materialize(instance, [asset])
            assert ok.success, [failure_description(ok)]
        # A wrong password: the broker refuses the authentication.
        kafka_env(monkeypatch, sasl_broker, KAFKA_WRONG)
        wrong = materialize(instance, ["shopping_cart_events_topic"])
        assert not wrong.success
        texts["wrong password failure"] = failure_description(wrong)
        # SASL configured, nobody listening.
        kafka_env(monkeypatch, f"127.0.0.1:{proc.free_port()}", KAFKA_WRONG)
        dead = materialize(instance, ["cart_events_load"])
        assert not dead.success
        texts["unreachable failure"] = failure_description(dead)
        texts.update(dagster_texts(instance))

    settings = KafkaSettings.from_env()  # still the unreachable broker, wrong password
    with pytest.raises(KafkaIOError) as unreachable:
        Topics(settings).ensure("shopping_cart_events", 1)
    texts.update(error_texts("unreachable", unreachable.value))
    wrong_settings = KafkaSettings.from_env(
        {**os.environ, "CART_KAFKA_BOOTSTRAP_SERVERS": sasl_broker}
    )
    with pytest.raises(KafkaIOError) as refused:
        Topics(wrong_settings).ensure("shopping_cart_events", 1)
    texts.update(error_texts("refused", refused.value))
    texts.update(captured(capfd, caplog))
    print(f"\nwrong SASL password reads: {texts['wrong password failure'][:300]}")
    print(f"unreachable broker reads: {texts['unreachable failure'][:300]}")
    assert not leaks(texts), leaks(texts)


def test_ksqldb_password_never_printed(
    recorder_401: Recorder,
    kafka_bootstrap: str,
    ksqldb_url: str,
    ksql_engine: EngineProcess,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_env(monkeypatch, CART_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, CART_KAFKA_TIMEOUT_S="20")
    texts: dict[str, str] = {}
    reset_pipeline_objects(kafka_bootstrap, ksqldb_url)
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            # Success: the real engine (it ignores auth; the client sends it regardless).
            ksql_env(monkeypatch, ksqldb_url)
            ok = materialize(
                instance, ["shopping_cart_events_topic", "shopping_cart_events_stream"]
            )
            assert ok.success, [failure_description(ok)]
            # A wrong API key: the server answers 401 as ksqlDB does.
            ksql_env(monkeypatch, recorder_401.url)
            denied = materialize(instance, ["shopping_cart_events_stream"])
            assert not denied.success
            texts["401 failure"] = failure_description(denied)
            assert "401" in texts["401 failure"]
            # Nobody listening.
            ksql_env(monkeypatch, f"http://127.0.0.1:{proc.free_port()}")
            dead = materialize(instance, ["shopping_cart_events_stream"])
            assert not dead.success
            texts["unreachable failure"] = failure_description(dead)
            texts.update(dagster_texts(instance))
    finally:
        reset_pipeline_objects(kafka_bootstrap, ksqldb_url)
    expected_auth = "Basic " + base64.b64encode(f"{KSQL_USER}:{KSQL_PASSWORD}".encode()).decode()
    assert recorder_401.auth and set(recorder_401.auth) == {expected_auth}  # the secret was sent

    with (
        pytest.raises(KsqlError) as denied_exc,
        KsqlClient.from_env(
            {
                "CART_KSQLDB_URL": recorder_401.url,
                "CART_KSQLDB_USERNAME": KSQL_USER,
                "CART_KSQLDB_PASSWORD": KSQL_PASSWORD,
            }
        ) as client,
    ):
        client.list_streams()
    texts.update(error_texts("401", denied_exc.value))
    # Credentials written into the URL are split off, never echoed.
    url = recorder_401.url.replace("://", f"://{KSQL_USER}:{KSQL_PASSWORD}@")
    with pytest.raises(KsqlError) as in_url, KsqlClient(url, timeout=10) as client:
        texts["client repr (credentials in url)"] = repr(client)
        client.list_streams()
    texts.update(error_texts("401 (credentials in url)", in_url.value))

    # The command line: the same secrets from the environment, a 401 and a success.
    for name, target, code in (("cli 401", recorder_401.url, 1), ("cli ok", ksqldb_url, 0)):
        env = {**os.environ, "CART_KSQLDB_URL": target}
        done = subprocess.run(
            [sys.executable, "-m", "cart_pipeline.cli", "ksql", "SHOW STREAMS"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, done.stderr
        texts[f"{name} stdout"], texts[f"{name} stderr"] = done.stdout, done.stderr
    texts["engine log"] = ksql_engine.log_path.read_text(errors="replace")
    texts.update(captured(capfd, caplog))
    print(f"\nksqlDB 401 reads: {texts['401 failure'][:300]}")
    assert not leaks(texts), leaks(texts)


#: A stand-in for the reconciliation: the sensor reads check evaluations of this key from the
#: event log, whoever wrote them, and a failing one on demand needs no broken ksqlDB.
@dg.asset(
    key="cart_reconciliation",
    check_specs=[dg.AssetCheckSpec("totals_match", asset="cart_reconciliation")],
)
def failing_reconciliation() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="totals_match",
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description="3 of 10 keys differ.",
                metadata={"mismatches": 3},
            )
        ]
    )


def test_webhook_url_never_printed(
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = Recorder(500)
    path = f"/services/T000/B000/{HOOK_TOKEN}"
    texts: dict[str, str] = {}
    outcomes: list[str] = []
    try:
        with dg.DagsterInstance.ephemeral() as instance:

            def tick(cursor: str | None) -> str | None:
                alerts = {"alerts": resources_from_env()["alerts"]}  # an EnvVar, resolved here
                context = dg.build_sensor_context(
                    instance=instance, resources=alerts, cursor=cursor
                )
                result = data_quality_alerts(context)
                outcomes.append(str(getattr(result, "skip_message", result)))
                return context.cursor

            monkeypatch.setenv("CART_ALERT_WEBHOOK_URL", hook.url + path)
            cursor = tick(None)  # starts watching
            dg.materialize([failing_reconciliation], instance=instance, raise_on_error=False)
            cursor = tick(cursor)  # the webhook answers 500: not delivered, retried later
            assert "delivery failed" in outcomes[-1] and hook.paths == [path]
            hook.status = 200
            cursor = tick(cursor)  # delivered
            assert outcomes[-1] == "1 alert(s) sent" and hook.paths == [path, path]
            dg.materialize([failing_reconciliation], instance=instance, raise_on_error=False)
            monkeypatch.setenv(
                "CART_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{proc.free_port()}{path}"
            )
            cursor = tick(cursor)  # nobody listening
            assert "unreachable" in outcomes[-1]
            texts.update(dagster_texts(instance))
    finally:
        hook.close()
    # The resource on its own: an HTTP error, then nobody listening.
    for name, base in (("webhook 500", hook), ("webhook unreachable", None)):
        server = Recorder(500) if base else None
        url = (server.url if server else f"http://127.0.0.1:{proc.free_port()}") + path
        try:
            with pytest.raises(AlertDeliveryError) as info:
                AlertWebhookResource(url=url, timeout_s=5).post("test")
        finally:
            if server:
                server.close()
        texts.update(error_texts(name, info.value))
    texts["sensor outcomes"] = "\n".join(outcomes)
    texts.update(captured(capfd, caplog))
    print(f"\nalert sensor outcomes: {outcomes}")
    assert not leaks(texts), leaks(texts)
