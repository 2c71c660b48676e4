"""A private real broker with a SASL/PLAIN listener, for tests of credentials and secrets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cart_pipeline.embedded import KafkaBroker, KafkaConfig
from cart_pipeline.embedded import process as proc


@contextmanager
def sasl_plain_broker(data_dir: Path, users: dict[str, str]) -> Iterator[str]:
    """Start a broker whose SASL_PLAINTEXT listener knows ``users`` (name -> password); yield
    that listener's address. Its plain listener serves only the launcher's readiness probe."""
    plain, sasl, controller = proc.free_port(), proc.free_port(), proc.free_port()
    accounts = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    jaas = f"org.apache.kafka.common.security.plain.PlainLoginModule required {accounts};"
    extra = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},"
        f"CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
        "CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
    }
    broker = KafkaBroker(
        KafkaConfig(
            data_dir=data_dir,
            port=plain,
            controller_port=controller,
            heap="256m",
            tied_to_parent=True,
            extra_properties=extra,
        )
    )
    broker.start()
    try:
        yield f"127.0.0.1:{sasl}"
    finally:
        broker.stop()
