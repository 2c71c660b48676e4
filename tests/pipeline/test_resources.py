"""Resources come from the environment; secrets stay EnvVar references and out of messages."""

from __future__ import annotations

import dagster as dg
import pytest

from cart_pipeline.embedded.process import free_port
from cart_pipeline.pipeline.resources import (
    AlertDeliveryError,
    AlertWebhookResource,
    KafkaResource,
    KsqlDBResource,
    resources_from_env,
)

SECRET = "s3cr3t-Value-42"


def test_defaults_target_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CART_KAFKA_BOOTSTRAP_SERVERS", "CART_KSQLDB_URL", "CART_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    resources = resources_from_env()
    kafka, ksqldb = resources["kafka"], resources["ksqldb"]
    assert isinstance(kafka, KafkaResource) and kafka.bootstrap_servers == "127.0.0.1:9092"
    assert isinstance(ksqldb, KsqlDBResource) and ksqldb.url == "http://127.0.0.1:8088"


def test_secrets_are_env_var_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CART_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CART_KAFKA_SASL_USERNAME", "KEY")
    monkeypatch.setenv("CART_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("CART_KSQLDB_PASSWORD", SECRET)
    monkeypatch.setenv("CART_ALERT_WEBHOOK_URL", f"https://hooks.example/{SECRET}")
    resources = resources_from_env()
    for key, field, var in (
        ("kafka", "sasl_password", "CART_KAFKA_SASL_PASSWORD"),
        ("ksqldb", "password", "CART_KSQLDB_PASSWORD"),
        ("alerts", "url", "CART_ALERT_WEBHOOK_URL"),
    ):
        value = getattr(resources[key], field)
        assert isinstance(value, dg.EnvVar), f"{key}.{field} must be an EnvVar reference"
        assert value.env_var_name == var
    # Resolved inside a run, the values are there, and still not in what may be logged.
    kafka = resources["kafka"].process_config_and_initialize()
    assert isinstance(kafka, KafkaResource)
    settings = kafka.settings()
    assert settings.client_config()["sasl.password"] == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings.describe())


def test_webhook_failure_never_names_the_url() -> None:
    hook = AlertWebhookResource(url=f"http://127.0.0.1:{free_port()}/hooks/{SECRET}", timeout_s=3)
    with pytest.raises(AlertDeliveryError) as info:
        hook.post("test")
    assert SECRET not in str(info.value) and "unreachable" in str(info.value)
