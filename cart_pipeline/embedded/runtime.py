"""Find Java and resolve the Apache Kafka runtime (jars) the embedded broker runs on.

The runtime comes from Maven Central through the small pom shipped beside this module
(``kafka-runtime.pom.xml``), copied once into a per-user cache that later runs reuse.
``KAFKA_HOME`` pointing at an unpacked Apache Kafka distribution is accepted instead.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cart_pipeline.embedded.errors import PrerequisiteMissing, RuntimeResolveError

#: Must match <kafka.version> in kafka-runtime.pom.xml; names the cache directory.
KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17
POM_NAME = "kafka-runtime.pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
MVN_TIMEOUT_S = 900

INSTALL_JAVA = (
    "Install a Java 17+ runtime (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; "
    "macOS: `brew install openjdk@17`) or point JAVA_HOME at one."
)
INSTALL_MAVEN = (
    "Install Maven (Debian/Ubuntu: `apt-get install maven`; macOS: `brew install maven`) so the "
    "Kafka broker can be fetched once from Maven Central, or set KAFKA_HOME to an unpacked "
    "Apache Kafka 4.x distribution."
)


@dataclass(frozen=True)
class JavaRuntime:
    executable: str
    major_version: int


def cache_dir() -> Path:
    """Per-user cache (``$CART_CACHE_DIR``, else ``$XDG_CACHE_HOME/cart_pipeline``)."""
    explicit = os.environ.get("CART_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cart_pipeline"


def find_java(env: dict[str, str] | None = None) -> JavaRuntime:
    """Locate ``java`` (JAVA_HOME first, then PATH) and check it is 17 or newer."""
    env = dict(os.environ if env is None else env)
    candidates: list[str] = []
    if env.get("JAVA_HOME"):
        candidates.append(str(Path(env["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java", path=env.get("PATH", ""))
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        major = _java_major_version(candidate)
        if major is None:
            continue
        if major < MIN_JAVA:
            raise PrerequisiteMissing(
                f"The embedded Kafka broker needs Java {MIN_JAVA}+, but {candidate} is Java "
                f"{major}. {INSTALL_JAVA}"
            )
        return JavaRuntime(candidate, major)
    raise PrerequisiteMissing(
        f"Java was not found (no JAVA_HOME, no `java` on PATH). {INSTALL_JAVA}"
    )


def _java_major_version(java: str) -> int | None:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2) or 0) if major == 1 else major


def kafka_classpath(env: dict[str, str] | None = None) -> str:
    """The broker's classpath: ``$KAFKA_HOME/libs/*`` or the Maven-resolved cache."""
    env = dict(os.environ if env is None else env)
    home = env.get("KAFKA_HOME")
    if home:
        libs = Path(home).expanduser() / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise PrerequisiteMissing(
                f"KAFKA_HOME={home} is not an unpacked Apache Kafka distribution "
                f"(no libs/kafka_2.13-*.jar). Unset KAFKA_HOME to fetch Kafka with Maven instead."
            )
        return f"{libs}/*"
    return f"{resolve_runtime(env)}/*"


def resolve_runtime(env: dict[str, str] | None = None) -> Path:
    """Copy Kafka's jars from Maven Central into the cache once; return the lib directory.

    A file lock makes concurrent first runs (parallel tests, two terminals) wait for one
    resolution instead of racing; the directory is renamed into place only when complete.
    """
    env = dict(os.environ if env is None else env)
    root = cache_dir() / f"kafka-{KAFKA_VERSION}"
    lib = root / "lib"
    if _complete(lib):
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(lib):
            return lib
        mvn = shutil.which("mvn", path=env.get("PATH", ""))
        if not mvn:
            raise PrerequisiteMissing(f"Maven (`mvn`) was not found on PATH. {INSTALL_MAVEN}")
        staging = root / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        pom = resources.files("cart_pipeline.embedded").joinpath(POM_NAME)
        with resources.as_file(pom) as pom_path:
            cmd = [
                mvn, "-B", "-q", "-f", str(pom_path), DEPENDENCY_PLUGIN,
                f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=MVN_TIMEOUT_S, env=env, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise RuntimeResolveError(
                    f"Maven did not finish resolving Kafka {KAFKA_VERSION} within "
                    f"{MVN_TIMEOUT_S}s; check that Maven Central is reachable."
                ) from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise RuntimeResolveError(
                f"Maven could not resolve Kafka {KAFKA_VERSION} from Maven Central "
                f"(exit {done.returncode}). Check network access to Maven Central and "
                f"~/.m2/settings.xml.\n{tail}"
            )
        (staging / ".complete").write_text(KAFKA_VERSION)
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
    return lib


def _complete(lib: Path) -> bool:
    return (lib / ".complete").exists() and any(lib.glob("kafka_2.13-*.jar"))
