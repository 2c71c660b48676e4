"""docker-compose.yml and its Dagster instance cannot start here (no Docker engine), so their
structure is checked instead: services, pinned tags, loopback ports, health-gated start order,
the same environment variables as the embedded path, and dagster.yaml against Dagster's schema."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BUILT_IMAGE = "cart_pipeline:"


def test_services_present() -> None:
    assert set(SERVICES) >= {
        "kafka", "ksqldb-server", "ksqldb-cli", "postgres",
        "dagster-code", "dagster-webserver", "dagster-daemon",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_pinned_image_and_healthcheck(name: str) -> None:
    service = SERVICES[name]
    image = service["image"]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: image {image!r} has no tag"
    assert not image.endswith(":latest")
    assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_kafka_and_ksqldb_share_a_major_version() -> None:
    kafka_tag = SERVICES["kafka"]["image"].split(":")[1]
    ksql_tag = SERVICES["ksqldb-server"]["image"].split(":")[1]
    assert kafka_tag.startswith("4.")
    # Confluent Platform 8.x is built on Apache Kafka 4.x.
    assert ksql_tag.startswith("8.")
    env = SERVICES["ksqldb-server"]["environment"]
    assert str(env["KSQL_KSQL_INTERNAL_TOPIC_REPLICAS"]) == "1"
    assert str(env["KSQL_KSQL_LOGGING_PROCESSING_TOPIC_REPLICATION_FACTOR"]) == "1"


def test_host_ports_bind_loopback_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_start_order_waits_for_health() -> None:
    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, name
    assert "ksqldb-server" in SERVICES["dagster-code"]["depends_on"]
    assert "kafka" in SERVICES["ksqldb-server"]["depends_on"]


def test_dagster_services_share_the_embedded_paths_settings() -> None:
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        service = SERVICES[name]
        assert service["image"].startswith(BUILT_IMAGE)
        env = service["environment"]
        assert env["CART_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"
        assert env["CART_KSQLDB_URL"] == "http://ksqldb-server:8088"
        assert env["DAGSTER_HOME"] == "/opt/dagster/home"
    assert "build" in SERVICES["dagster-code"]


def test_workspace_points_at_the_code_location() -> None:
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    code = SERVICES["dagster-code"]["command"]
    assert grpc["host"] == "dagster-code"
    assert str(grpc["port"]) == code[code.index("-p") + 1]
    assert grpc["location_name"] == code[code.index("--location-name") + 1] == "cart_pipeline"


def test_deployment_dagster_yaml_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HOST", "USER", "PASSWORD", "DB"):
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{var}", "x")
    config, _ = dagster_instance_config(str(REPO / "deploy"))
    assert "postgres" in config["storage"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_dagster_yaml_schema_rejects_a_typo(tmp_path: Path) -> None:
    """The validation above is real: the same call refuses a misspelt key."""
    (tmp_path / "dagster.yaml").write_text("storrage:\n  sqlite: {}\n")
    with pytest.raises(Exception, match="storrage"):
        dagster_instance_config(str(tmp_path))


def test_dagster_family_pinned_to_one_release() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]
    pins = dict(d.split("==") for d in deps)
    assert all("==" in d for d in deps), "every dependency is pinned"
    core = pins["dagster"]
    major, minor, patch = core.split(".")
    assert (major, minor) == ("1", "13")
    for name, version in pins.items():
        if name.startswith("dagster-"):
            expected = {core, f"0.29.{patch}"}
            assert version in expected, f"{name}=={version} does not match dagster=={core}"
