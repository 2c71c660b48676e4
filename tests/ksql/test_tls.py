"""HTTPS + basic auth (the Confluent Cloud shape) against a real TLS stand-in."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cart_pipeline.ksql import KsqlClient, KsqlConfigError, KsqlTimeout, KsqlTransportError

from ._standins import Reply, Seen, StandIn, http_standin, json_body

SECRET = "cloud-secret-XYZ"
INFO = {"KsqlServerInfo": {"version": "0.29.0", "kafkaClusterId": "k", "ksqlServiceId": "s"}}


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_server(self_signed: tuple[Path, Path]) -> Iterator[StandIn]:
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def route(seen: Seen) -> Reply:
        if seen.headers.get("authorization") is None:
            return Reply(
                401,
                json_body(
                    {"@type": "generic_error", "error_code": 40100, "message": "Unauthorized"}
                ),
            )
        return Reply(200, json_body(INFO))

    with http_standin(route, tls=context) as server:
        yield server


def test_untrusted_certificate_is_a_transport_error(tls_server: StandIn) -> None:
    with (
        KsqlClient(tls_server.url, username="KEY", password=SECRET) as client,
        pytest.raises(KsqlTransportError) as info,
    ):
        client.server_info()
    assert not isinstance(info.value, KsqlTimeout)
    assert "TLS handshake failed" in str(info.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert SECRET not in str(info.value)


def test_custom_ca_bundle_and_basic_auth(
    tls_server: StandIn, self_signed: tuple[Path, Path]
) -> None:
    cert, _ = self_signed
    env = {
        "CART_KSQLDB_URL": tls_server.url,
        "CART_KSQLDB_USERNAME": "KEY",
        "CART_KSQLDB_PASSWORD": SECRET,
        "CART_KSQLDB_VERIFY": str(cert),
    }
    with KsqlClient.from_env(env) as client:
        assert client.server_info().version == "0.29.0"
    assert tls_server.requests[0].headers["authorization"].startswith("Basic ")


def test_unloadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(KsqlConfigError, match="cannot load CA bundle"):
        KsqlClient("https://127.0.0.1:1", verify=junk)
