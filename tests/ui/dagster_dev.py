"""A real ``dagster dev`` (webserver + daemon + code server) for UI tests, and its GraphQL API.

The UI is only a client of the webserver's GraphQL endpoint, so the tests drive and read
the pipeline through the same queries and mutations the UI sends. Everything here is
bounded: start-up, run completion and shut-down each have a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from cart_pipeline.embedded import process as proc

ROOT = Path(__file__).resolve().parents[2]
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}
"""

ASSET_NODES = """
{
  assetNodes {
    assetKey { path }
    repository { name location { name } }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status assetSelection { path } }
    ... on PythonError { message }
  }
}
"""

RUNS = "{ runsOrError { __typename ... on Runs { count results { runId status } } } }"

ASSET = """
query Asset($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      assetChecksOrError {
        __typename
        ... on AssetChecks {
          checks {
            name
            executionForLatestMaterialization {
              runId
              status
              evaluation { success severity description }
            }
          }
        }
      }
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          __typename
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
        }
      }
    }
  }
}
"""


def _reset_signals() -> None:
    """Run in the child before exec: own process group, default SIGINT/SIGTERM.

    A parent started in the background of a non-interactive shell passes on *ignored*
    SIGINT/SIGTERM; ``dagster dev`` would then never hear the request to shut down.
    """
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterDev:
    """``dagster dev -w workspace.yaml`` on 127.0.0.1 and a free port, in its own group."""

    def __init__(self, home: Path, env: dict[str, str], log_path: Path) -> None:
        self.home, self.env, self.log_path = home, env, log_path
        self.port = proc.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    def start(self, timeout_s: float = 240) -> DagsterDev:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        dagster = Path(sys.executable).with_name("dagster")
        command = [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                   "-p", str(self.port)]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env={**self.env, "DAGSTER_HOME": str(self.home)},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_reset_signals,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self._serving():
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster dev not serving after {timeout_s:.0f}s:\n{self.log()}")
            time.sleep(1)
        # The webserver answers before the code location has loaded: wait for the assets too.
        while not self.asset_nodes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"code location not loaded in {timeout_s:.0f}s:\n{self.log()}")
            time.sleep(1)
        return self

    def _serving(self) -> bool:
        try:
            return self.http.get("/server_info", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self, lines: int = 40) -> str:
        return proc.tail(self.log_path, lines)

    def stop(self, timeout_s: float = 60) -> None:
        """SIGINT (dagster dev's own clean shut-down), then the whole group, bounded."""
        self.http.close()
        if self.process is None:
            return
        group = self.process.pid  # the leader of the group _reset_signals created
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                if sig == signal.SIGINT:
                    self.process.send_signal(sig)
                else:
                    os.killpg(group, sig)
            except ProcessLookupError:
                pass
            if self._group_gone(group, wait_s):
                break
        if self.process.poll() is None:
            self.process.wait(timeout=5)
        self.process = None

    def _group_gone(self, group: int, wait_s: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader so it does not linger as a zombie
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.5)
        return False

    # -- GraphQL ---------------------------------------------------------------------

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return dict(body["data"])

    def asset_nodes(self) -> list[dict[str, Any]]:
        try:
            return list(self.graphql(ASSET_NODES)["assetNodes"])
        except (httpx.HTTPError, AssertionError):
            return []

    def launch_assets(self, run_config: dict[str, Any]) -> str:
        """Materialize every asset (and its checks) the way the UI's launch button does."""
        nodes = self.asset_nodes()
        repository = nodes[0]["repository"]
        params = {
            "selector": {
                "repositoryLocationName": repository["location"]["name"],
                "repositoryName": repository["name"],
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": n["assetKey"]["path"]} for n in nodes],
                "assetCheckSelection": [
                    {"assetKey": {"path": n["assetKey"]["path"]}, "name": c["name"]}
                    for n in nodes
                    for c in n["assetChecksOrError"].get("checks", [])
                ],
            },
            "runConfigData": run_config,
            "mode": "default",
        }
        result = self.graphql(LAUNCH, params=params)["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return str(result["run"]["runId"])

    def runs(self) -> list[dict[str, Any]]:
        return list(self.graphql(RUNS)["runsOrError"]["results"])

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.graphql(RUN, runId=run_id)["runOrError"])

    def wait_for_run(self, run_id: str, timeout_s: float = 480) -> str:
        deadline = time.monotonic() + timeout_s
        while (status := self.run(run_id)["status"]) not in FINISHED:
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {status} after {timeout_s:.0f}s")
            time.sleep(2)
        return str(status)

    def asset(self, key: str) -> dict[str, Any]:
        node = self.graphql(ASSET, path=[key])["assetNodeOrError"]
        assert node["__typename"] == "AssetNode", node
        return dict(node)
