"""CREATE STREAM on a topic another client created a moment ago (the pipeline's topic asset,
then its stream asset): the engine must not answer "does not exist" from metadata that has
not caught up yet, and a topic that really is missing still gets ksqlDB's error."""

from __future__ import annotations

import contextlib
import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from tests.engine.conftest import KsqlClient

pytestmark = pytest.mark.timeout(600)

ROUNDS = 10  # 29 of 30 such topics looked missing before the fix


def create_stream(name: str) -> str:
    return (
        f"CREATE STREAM {name} (customer VARCHAR KEY, item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{name}', value_format='json');"
    )


def test_create_stream_right_after_the_topic_was_created(
    client: KsqlClient, kafka_bootstrap: str, unique_name: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap, "log_level": 0})
    names = [f"{unique_name}_{i}" for i in range(ROUNDS)]
    failures: list[str] = []
    try:
        for name in names:
            admin.create_topics([NewTopic(name, 2, 1)], operation_timeout=60)[name].result(60)
            r = client.post_ksql(create_stream(name))  # at once, no wait for propagation
            if r.status_code != 200:
                failures.append(f"{name}: {r.status_code} {r.text[:200]}")
        assert not failures, failures
        (streams,) = client.ksql("SHOW STREAMS;")
        by_name = {s["name"]: s for s in streams["streams"]}
        for name in names:  # created over the existing topic, with its partition count
            assert by_name[name.upper()]["topic"] == name
        (described,) = client.ksql(f"DESCRIBE {names[-1]} EXTENDED;")
        assert described["sourceDescription"]["partitions"] == 2
    finally:
        for name in names:
            client.post_ksql(f"DROP STREAM IF EXISTS {name};")
        for future in admin.delete_topics(names, operation_timeout=60).values():
            with contextlib.suppress(KafkaException):
                future.result(60)


def test_topic_that_was_never_created_is_still_missing(
    client: KsqlClient, unique_name: str
) -> None:
    started = time.monotonic()
    r = client.post_ksql(create_stream(unique_name))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["@type"] == "statement_error" and body["error_code"] == 40001
    assert body["message"].startswith(
        f"Topic '{unique_name}' does not exist. If you want to create a new topic for the "
        "stream/table please re-run the statement providing the required 'PARTITIONS' "
        "configuration in the WITH clause"
    )
    assert time.monotonic() - started < 60  # bounded: re-checked briefly, not waited on
    (streams,) = client.ksql("SHOW STREAMS;")
    assert unique_name.upper() not in {s["name"] for s in streams["streams"]}
