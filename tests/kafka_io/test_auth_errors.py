"""A wrong SASL password is reported as such, not as "Kafka did not answer ... transport failure".

A private real broker with a SASL/PLAIN listener refuses a wrong password; every path that
talks to Kafka (admin metadata, the transactional loader, the recompute consumer) must raise
an error naming the refused credentials and the variables to fix, never the password, and
librdkafka must not print its own copy of the error on stderr.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from cart_pipeline.kafka_io import KafkaAuthenticationFailed, KafkaSettings, Topics
from cart_pipeline.loader.config import GeneratorConfig
from cart_pipeline.loader.producer import load_events
from cart_pipeline.reconcile.recompute import recompute_partition
from tests.sasl_broker import sasl_plain_broker

pytestmark = pytest.mark.timeout(300)

USER = "carol"
RIGHT = f"RightPw{uuid.uuid4().hex[:10]}"
WRONG = f"WrongPw{uuid.uuid4().hex[:10]}"
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def sasl_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sasl_plain_broker(tmp_path_factory.mktemp("sasl-auth"), {USER: RIGHT}) as bootstrap:
        yield bootstrap


def settings(bootstrap: str, password: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_username=USER,
        sasl_password=password,
        timeout_s=TIMEOUT_S,
    )


def assert_names_the_credentials(error: BaseException, bootstrap: str) -> None:
    text = str(error)
    assert "rejected the credentials" in text and bootstrap in text, text
    assert "Invalid username or password" in text, text
    assert "CART_KAFKA_SASL_USERNAME" in text and "CART_KAFKA_SASL_PASSWORD" in text, text
    assert "did not answer" not in text and "transport failure" not in text, text
    assert WRONG not in text and WRONG not in repr(error) and RIGHT not in text


def test_right_password_reaches_the_broker(sasl_bootstrap: str, unique_name: str) -> None:
    """The broker works: what the other tests see is the refused password, nothing else."""
    topics = Topics(settings(sasl_bootstrap, RIGHT))
    assert topics.describe(unique_name) is None
    assert topics.ensure(unique_name, partitions=1).created


def test_wrong_password_names_authentication(
    sasl_bootstrap: str, unique_name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationFailed) as info:
        Topics(settings(sasl_bootstrap, WRONG)).ensure(unique_name, partitions=1)
    # A refused login is final: no need to wait out the whole timeout.
    assert time.monotonic() - started < TIMEOUT_S
    assert_names_the_credentials(info.value, sasl_bootstrap)
    out, err = capfd.readouterr()
    assert "Invalid username or password" not in out + err  # librdkafka's stderr copy is gone
    assert WRONG not in out + err


def test_wrong_password_in_the_loader_and_the_recompute(
    sasl_bootstrap: str, unique_name: str
) -> None:
    Topics(settings(sasl_bootstrap, RIGHT)).ensure(unique_name, partitions=1)
    wrong = settings(sasl_bootstrap, WRONG)
    with pytest.raises(KafkaAuthenticationFailed) as loaded:
        config = GeneratorConfig(n_events=10, seed=1)
        load_events(wrong, unique_name, config, transactional_id=f"tx-{unique_name}")
    assert_names_the_credentials(loaded.value, sasl_bootstrap)
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationFailed) as read:
        recompute_partition(wrong, unique_name, 0, end=10, idle_timeout_s=TIMEOUT_S)
    # Final at the first refusal, not after the idle limit.
    assert time.monotonic() - started < TIMEOUT_S
    assert_names_the_credentials(read.value, sasl_bootstrap)
