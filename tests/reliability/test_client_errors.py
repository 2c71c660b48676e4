"""Bad SQL, unknown sources, invalid properties and dead peers, through the pipeline's clients."""

from __future__ import annotations

import socket
import time

import pytest

from cart_pipeline.kafka_io import KafkaSettings, KafkaUnavailable, Topics
from cart_pipeline.ksql import KsqlClient, KsqlStatementError, KsqlTimeout, KsqlTransportError


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_sql_is_a_statement_error(ksql: KsqlClient) -> None:
    sql = "SELEKT * FROM nowhere;"
    with pytest.raises(KsqlStatementError) as info:
        ksql.execute(sql)
    err = info.value
    assert err.http_status == 400
    assert err.error_code == 40001
    assert err.error_type == "statement_error"
    assert err.statement_text == sql
    assert "Syntax Error" in err.message
    assert "40001" in str(err) and "SELEKT" in str(err)


def test_unknown_source(ksql: KsqlClient, unique_name: str) -> None:
    name = f"{unique_name}_missing".upper()
    with pytest.raises(KsqlStatementError) as info:
        ksql.query(f"SELECT * FROM {name};")
    assert info.value.error_code == 40001
    assert f"{name} does not exist." in info.value.message
    with pytest.raises(KsqlStatementError) as described:
        ksql.describe(name)
    assert described.value.error_code == 40001
    assert described.value.message == f"Could not find STREAM/TABLE '{name}' in the Metastore"
    with pytest.raises(KsqlStatementError) as dropped:
        ksql.execute(f"DROP STREAM {name};")
    assert dropped.value.error_code == 40001
    assert f"{name} does not exist" in dropped.value.message


def test_invalid_property(ksql: KsqlClient, unique_name: str) -> None:
    sql = (
        f"CREATE STREAM {unique_name} (a INT) "
        f"WITH (kafka_topic='{unique_name}', value_format='json', partitions=1, bogus='x');"
    )
    with pytest.raises(KsqlStatementError) as info:
        ksql.execute(sql)
    assert info.value.error_code == 40001
    assert info.value.message == "Invalid config variable(s) in the WITH clause: BOGUS"
    assert info.value.statement_text == sql
    # Nothing was created by the rejected statement.
    assert unique_name.upper() not in {s.name for s in ksql.list_streams()}


def test_unreachable_ksqldb_fails_fast_and_says_what_to_check() -> None:
    port = _closed_port()
    client = KsqlClient(f"http://127.0.0.1:{port}", timeout=3, connect_timeout=2)
    with client:
        started = time.monotonic()
        with pytest.raises(KsqlTransportError) as info:
            client.execute("SHOW STREAMS;")
        assert time.monotonic() - started < 5
        assert not isinstance(info.value, KsqlTimeout)
        assert f"127.0.0.1:{port}" in str(info.value)
        assert "is ksqlDB running" in str(info.value)

        started = time.monotonic()
        with pytest.raises(KsqlTimeout) as waited:
            client.wait_until_ready(2, poll_s=0.2)
        assert time.monotonic() - started < 6
        assert "not ready within 2s" in str(waited.value)


def test_unreachable_kafka_fails_within_its_bound() -> None:
    port = _closed_port()
    topics = Topics(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", timeout_s=3))
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable) as info:
        topics.describe("anything")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "CART_KAFKA_BOOTSTRAP_SERVERS" in message
