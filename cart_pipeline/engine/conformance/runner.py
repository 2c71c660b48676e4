"""Run conformance cases against one engine (REST) and one broker, several at a time."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from cart_pipeline.engine import kafka
from cart_pipeline.engine.conformance import kafka_io
from cart_pipeline.engine.conformance.cases import Case, new_suffix, rename_case, strip_suffix
from cart_pipeline.engine.conformance.compare import (
    describe_schema,
    matches,
    normalize_schema,
    same_value,
)
from cart_pipeline.engine.sql import ast, parse_statements

LOG = logging.getLogger(__name__)
UNSUPPORTED = "Unsupported by the embedded engine"
KSQL_JSON = "application/vnd.ksql.v1+json"
BASE_PROPERTIES = {
    "auto.offset.reset": "earliest",
    "ksql.streams.cache.max.bytes.buffering": "0",
    "ksql.streams.commit.interval.ms": "100",
}


@dataclass
class Outcome:
    file: str
    name: str
    status: str  # "passed" | "failed" | "unsupported"
    detail: str = ""
    seconds: float = 0.0


UNCHECKED_ERROR = (
    "expectedError not checked: the statements succeeded and no query followed, which ksqlDB's "
    "RestTestExecutor passes without checking the expectation"
)


class Unsupported(Exception):
    pass


class Failure(Exception):
    pass


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", body))
    return str(body)


@dataclass
class _CaseRun:
    case: Case
    suffix: str
    statements: list[str]
    props: dict[str, str]
    topics: dict[str, kafka_io.TopicSchema] = field(default_factory=dict)
    created: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    sinks: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)  # source tables (no sink topic)
    input_topics: set[str] = field(default_factory=set)
    note: str = ""  # why a passed case passed, when that needs saying

    def topic(self, name: str) -> str:
        return name + self.suffix


class Runner:
    def __init__(self, url: str, bootstrap: str, workers: int = 6, timeout: float = 30.0) -> None:
        self.url = url
        self.bootstrap = bootstrap
        self.workers = workers
        self.timeout = timeout
        self.http = httpx.Client(
            base_url=url,
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=workers * 3 + 4),
        )
        self.admin = kafka.admin(bootstrap)

    def close(self) -> None:
        self.http.close()

    # --- many cases ------------------------------------------------------------------------

    def run(
        self, cases: Iterable[Case], progress: Callable[[Outcome], None] | None = None
    ) -> list[Outcome]:
        cases = list(cases)
        results: list[Outcome | None] = [None] * len(cases)
        lock = threading.Lock()

        def one(i: int) -> None:
            outcome = self.run_case(cases[i])
            with lock:
                results[i] = outcome
                if progress:
                    progress(outcome)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="conformance") as pool:
            list(pool.map(one, range(len(cases))))
        return [r for r in results if r is not None]

    def run_case(self, case: Case) -> Outcome:
        start = time.monotonic()
        fmt = case.unserved_format
        if fmt is not None:
            return Outcome(case.file, case.name, "unsupported", f"format {fmt}", 0.0)
        suffix = new_suffix()
        run = _CaseRun(
            case,
            suffix,
            rename_case(case.statements, suffix),
            {**BASE_PROPERTIES, **case.properties},
        )
        status, detail = "passed", ""
        try:
            if case.kind == "qtt":
                self._qtt(run)
            else:
                self._rqtt(run)
        except Unsupported as exc:
            status, detail = "unsupported", str(exc)
        except Failure as exc:
            status, detail = "failed", str(exc)
        except Exception as exc:  # a runner problem is a failure too, never a pass
            LOG.debug("case %s crashed", case.name, exc_info=True)
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            try:
                self._cleanup(run)
            except Exception:
                LOG.debug("cleanup of %s failed", case.name, exc_info=True)
        detail = detail or run.note
        return Outcome(case.file, case.name, status, detail[:2000], time.monotonic() - start)

    # --- shared steps ------------------------------------------------------------------------

    def _ksql(self, sql: str, props: dict[str, str]) -> tuple[int, Any]:
        r = self.http.post(
            "/ksql", json={"ksql": sql, "streamsProperties": props}, headers={"Accept": KSQL_JSON}
        )
        return r.status_code, strip_suffix(orjson.loads(r.content or b"null"))

    def _prepare(self, run: _CaseRun) -> None:
        """Topics the case's test framework would create up front, and what the case creates."""
        run.topics = kafka_io.declared_topics(run.statements)
        wanted: dict[str, int] = {}
        default = 4 if run.case.kind == "rqtt" else 1  # as ksqlDB's RQTT/QTT frameworks do
        for t in run.case.raw.get("topics", []) or []:
            wanted[run.topic(t["name"])] = int(t.get("partitions") or default)
        for rec in run.case.raw.get("inputs", []) or []:
            topic = run.topic(rec["topic"])
            run.input_topics.add(topic)
            declared = run.topics.get(topic)
            wanted.setdefault(topic, (declared.partitions if declared else None) or default)
        for topic, schema in run.topics.items():
            if schema.partitions is None:
                wanted.setdefault(topic, default)
        for topic, n in wanted.items():
            kafka.ensure_topic(self.admin, topic, n)
        deadline = time.monotonic() + 15
        for topic, n in wanted.items():  # metadata lags creation; the engine must see them
            while kafka.topic_partitions(self.admin, topic) != n and time.monotonic() < deadline:
                time.sleep(0.1)
        for text in run.statements:
            try:
                parsed = parse_statements(text)
            except Exception:
                continue
            for ps in parsed:
                st = ps.statement
                if isinstance(st, ast.CreateSource | ast.CreateAsSelect):
                    run.created.append((st.kind, st.name))
                if isinstance(st, ast.CreateAsSelect):
                    run.sinks.append(st.name)
                if isinstance(st, ast.InsertInto) and st.target not in run.sinks:
                    run.sinks.append(st.target)
                if isinstance(st, ast.CreateSource) and st.is_source and st.kind == "TABLE":
                    run.materialized.append(st.name)

    def _refusal(self, body: Any, expected: dict[str, Any] | None, status: int = 400) -> None:
        """An error answer: unsupported, the expected error, or a failure."""
        message = _message(body)
        if UNSUPPORTED in message:
            raise Unsupported(message)
        if expected is None:
            raise Failure(f"unexpected error: {message}")
        want = str(expected.get("message", ""))
        if _no_column(want) not in _no_column(message):
            raise Failure(f"error message {message!r} does not contain {want!r}")
        want_status = expected.get("status")
        if want_status is not None and int(want_status) != status:
            raise Failure(f"error status {status}, expected {want_status}")

    def _produce_inputs(self, run: _CaseRun) -> None:
        records = []
        for rec in run.case.raw.get("inputs", []) or []:
            topic = run.topic(rec["topic"])
            schema = run.topics.get(topic)
            kfmt, vfmt = (schema.key_format, schema.value_format) if schema else ("KAFKA", "JSON")
            ktypes, vtypes = (schema.key_types, schema.value_types) if schema else ((), ())
            key = kafka_io.encode(rec.get("key"), kfmt, ktypes)
            value = kafka_io.encode(rec.get("value"), vfmt, vtypes)
            ts = rec.get("timestamp", 0 if run.case.kind == "rqtt" else None)
            records.append((topic, key, value, ts))
        if records:
            kafka_io.produce(self.bootstrap, records)

    def _describe(self, name: str, extended: bool = False) -> dict[str, Any] | None:
        quoted = "`" + name.replace("`", "``") + "`"
        status, body = self._ksql(f"DESCRIBE {quoted}{' EXTENDED' if extended else ''};", {})
        if status != 200 or not body:
            return None
        return body[0].get("sourceDescription")  # type: ignore[no-any-return]

    def _wait_caught_up(self, run: _CaseRun) -> None:
        """Until every query of the case has committed all its input (twice in a row)."""
        if not run.sinks and not run.materialized:
            return
        deadline = time.monotonic() + self.timeout
        streak = 0
        while time.monotonic() < deadline:
            if self._caught_up(run):
                streak += 1
                if streak >= 2:
                    return
            else:
                streak = 0
            time.sleep(0.15)
        raise Failure(f"queries did not process their input within {self.timeout}s")

    def _caught_up(self, run: _CaseRun) -> bool:
        ends_cache: dict[str, dict[int, int]] = {}
        for sink in run.sinks + run.materialized:
            desc = self._describe_raw(sink)
            if desc is None:
                continue
            for summary in desc.get("queryOffsetSummaries", []):
                for ts in summary.get("topicSummaries", []):
                    topic = ts["kafkaTopic"]
                    if topic not in ends_cache:
                        if topic in run.input_topics:
                            ends_cache[topic] = {
                                o["partition"]: o["logEndOffset"] for o in ts["offsets"]
                            }
                        else:
                            ends_cache[topic] = kafka_io.data_ends(self.bootstrap, topic)
                    for o in ts["offsets"]:
                        if o["consumerOffset"] < ends_cache[topic].get(o["partition"], 0):
                            return False
        return True

    def _describe_raw(self, name: str) -> dict[str, Any] | None:
        """DESCRIBE EXTENDED without removing suffixes (topic names are needed as they are)."""
        quoted = "`" + name.replace("`", "``") + "`"
        r = self.http.post(
            "/ksql",
            json={"ksql": f"DESCRIBE {quoted} EXTENDED;", "streamsProperties": {}},
            headers={"Accept": KSQL_JSON},
        )
        if r.status_code != 200:
            return None
        return r.json()[0].get("sourceDescription")  # type: ignore[no-any-return]

    def _sink_schemas(self, run: _CaseRun) -> dict[str, kafka_io.TopicSchema]:
        out = dict(run.topics)
        for _, name in run.created:
            desc = self._describe_raw(name)
            if desc is None or desc["topic"] in out:
                continue
            fields = desc.get("fields", [])
            out[desc["topic"]] = kafka_io.TopicSchema(
                desc["keyFormat"],
                desc["valueFormat"],
                tuple(f["schema"]["type"] for f in fields if f.get("type") == "KEY"),
                tuple(f["schema"]["type"] for f in fields if f.get("type") != "KEY"),
            )
        return out

    def _check_outputs(self, run: _CaseRun) -> None:
        expected: dict[str, list[dict[str, Any]]] = {}
        for rec in run.case.raw.get("outputs", []) or []:
            expected.setdefault(run.topic(rec["topic"]), []).append(rec)
        if not expected and not run.sinks:
            return
        schemas = self._sink_schemas(run)
        shared: set[str] = set()  # topics several queries write (INSERT INTO ... SELECT)
        for sink in run.sinks:
            desc = self._describe_raw(sink)
            if desc is not None:
                expected.setdefault(desc["topic"], [])
                if len(desc.get("writeQueries", [])) > 1:
                    shared.add(desc["topic"])
        for topic, want in expected.items():
            schema = schemas.get(topic)
            got = kafka_io.read_topic(self.bootstrap, topic) if _exists(self.admin, topic) else []
            shown = []
            for rec in got:
                kfmt, vfmt = (
                    (schema.key_format, schema.value_format) if schema else ("KAFKA", "JSON")
                )
                ktypes, vtypes = (schema.key_types, schema.value_types) if schema else ((), ())
                shown.append(
                    {
                        "key": kafka_io.decode(rec.key, kfmt, ktypes),
                        "value": kafka_io.decode(rec.value, vfmt, vtypes),
                        "timestamp": rec.timestamp,
                    }
                )
            name = strip_suffix(topic)
            if len(shown) != len(want):
                raise Failure(
                    f"topic {name}: expected {len(want)} records, got {len(shown)}: "
                    f"{_brief(shown)} expected {_brief(want)}"
                )
            if topic in shared:
                # separate queries interleave on a real broker as they run; ksqlDB's test
                # driver serialises them: their records are compared as a multiset
                shown = _aligned(want, shown)
            for i, (w, g) in enumerate(zip(want, shown, strict=True)):
                for part in ("key", "value", "timestamp"):
                    if part not in w:
                        continue
                    if part == "key" and w.get("key") is None and g["key"] is None:
                        continue
                    if not same_value(w[part], g[part]):
                        raise Failure(
                            f"topic {name} record {i}: {part} expected {w[part]!r}, got "
                            f"{g[part]!r} (all: {_brief(shown)})"
                        )

    def _check_post(self, run: _CaseRun) -> None:
        post = run.case.raw.get("post") or {}
        for want in post.get("sources", []) or []:
            name = want["name"]
            desc = self._describe(name + run.suffix)
            if desc is None:
                raise Failure(f"post: source {name} does not exist")
            if "type" in want and str(want["type"]).upper() != desc["type"]:
                raise Failure(f"post: {name} type {desc['type']}, expected {want['type']}")
            if "schema" in want:
                got = normalize_schema(describe_schema(desc["fields"]))
                if got != normalize_schema(want["schema"]):
                    raise Failure(f"post: {name} schema {got!r}, expected {want['schema']!r}")
            for key in ("keyFormat", "valueFormat"):
                if key in want:
                    w = want[key]
                    fmt = w.get("format") if isinstance(w, dict) else w
                    if fmt is not None and str(fmt).upper() != desc[key]:
                        raise Failure(f"post: {name} {key} {desc[key]}, expected {fmt}")
        topics = (
            (post.get("topics") or {}).get("topics", [])
            if isinstance(post.get("topics"), dict)
            else []
        )
        for t in topics:
            n = kafka.topic_partitions(self.admin, run.topic(t["name"]))
            if n is None:
                raise Failure(f"post: topic {t['name']} does not exist")
            if "partitions" in t and int(t["partitions"]) != n:
                raise Failure(
                    f"post: topic {t['name']} has {n} partitions, expected {t['partitions']}"
                )

    def _cleanup(self, run: _CaseRun) -> None:
        status, body = self._ksql_raw("SHOW QUERIES;")
        if status == 200:
            for q in body[0].get("queries", []):
                if run.suffix in q["id"] or any(run.suffix in s for s in q.get("sinks", [])):
                    self._ksql_raw(f"TERMINATE {q['id']};")
        for kind, name in reversed(run.created):
            quoted = "`" + name.replace("`", "``") + "`"
            self._ksql_raw(f"DROP {kind} IF EXISTS {quoted} DELETE TOPIC;")
        topics = [t for t in self.admin.list_topics(timeout=10).topics if run.suffix in t]
        if topics:
            kafka.delete_topics(self.admin, topics)

    def _ksql_raw(self, sql: str) -> tuple[int, Any]:
        r = self.http.post(
            "/ksql", json={"ksql": sql, "streamsProperties": {}}, headers={"Accept": KSQL_JSON}
        )
        return r.status_code, orjson.loads(r.content or b"null")

    # --- QTT -------------------------------------------------------------------------------

    def _qtt(self, run: _CaseRun) -> None:
        self._prepare(run)
        expected = run.case.raw.get("expectedException")
        # one request, as ksqlDB's QTT runs a case's statements as one script
        status, body = self._ksql("\n".join(run.statements), run.props)
        if status != 200:
            self._refusal(body, expected)
            return
        if expected is not None:
            raise Failure(f"expected an error containing {expected.get('message')!r}")
        self._produce_inputs(run)
        self._wait_caught_up(run)
        self._check_outputs(run)
        self._check_post(run)

    # --- RQTT ------------------------------------------------------------------------------

    def _rqtt(self, run: _CaseRun) -> None:
        self._prepare(run)
        expected_error = run.case.raw.get("expectedError")
        responses = run.case.raw.get("responses") or []
        admin: list[str] = []
        queries: list[str] = []
        for text in run.statements:
            try:
                is_query = all(isinstance(p.statement, ast.Query) for p in parse_statements(text))
            except Exception:
                is_query = text.lstrip().upper().startswith("SELECT")
            (queries if is_query else admin).append(text)
        actual: list[dict[str, Any]] = []
        if admin:
            status, body = self._ksql("\n".join(admin), run.props)
            if status != 200:
                self._refusal(body, expected_error, status)
                return
            actual += [{"admin": e} for e in body]
        self._produce_inputs(run)
        self._wait_caught_up(run)
        for text in queries:
            result = self._query(text, run.props, responses, len(actual))
            if isinstance(result, dict):  # an error answer
                self._refusal(result["error"], expected_error, result["status"])
                return
            actual.append({"query": result})
        if expected_error is not None:
            if queries:
                raise Failure(f"expected an error containing {expected_error.get('message')!r}")
            # ksqlDB's own RestTestExecutor checks expectedError only when a request fails or a
            # query returns (failIfExpectingError); with no query a successful run passes there,
            # and so it does here, with the reason recorded.
            run.note = UNCHECKED_ERROR
        for i, want in enumerate(responses):
            if i >= len(actual):
                raise Failure(f"response {i}: missing (expected {want!r})")
            verify_order = bool((run.case.raw.get("outputConditions") or {}).get("verifyOrder"))
            problem = _match_response(want, actual[i], f"response[{i}]", verify_order)
            if problem:
                for entry in (
                    actual[i].get("query", []) if isinstance(actual[i].get("query"), list) else []
                ):
                    if UNSUPPORTED in str(entry):
                        raise Unsupported(str(entry))
                raise Failure(f"{problem} (all: {str(actual[i])[:600]})")
        if run.case.raw.get("outputs"):
            self._check_outputs(run)

    def _query(
        self, sql: str, props: dict[str, str], responses: list[Any], index: int
    ) -> list[Any] | dict[str, Any]:
        want = responses[index].get("query") if index < len(responses) else None
        limit = len(want) if isinstance(want, list) else None
        entries: list[Any] = []
        deadline = time.monotonic() + 10.0
        with self.http.stream(
            "POST",
            "/query",
            json={"ksql": sql, "streamsProperties": props},
            headers={"Accept": KSQL_JSON},
            timeout=httpx.Timeout(15.0, read=12.0),
        ) as r:
            if r.status_code != 200:
                return {"status": r.status_code, "error": strip_suffix(orjson.loads(r.read()))}
            try:
                for line in r.iter_lines():
                    text = line.strip()
                    if text.startswith("["):
                        text = text[1:]
                    text = text.rstrip(",").strip()
                    if text.endswith("]") and not text.endswith("]}") and text != "]":
                        text = text[:-1]
                    if text in ("", "]"):
                        continue
                    entries.append(strip_suffix(orjson.loads(text)))
                    if limit is not None and len(entries) >= limit:
                        break
                    if time.monotonic() > deadline:
                        break
            except httpx.ReadTimeout:
                pass
        return entries


_POSITION = re.compile(r"(line \d+):\d+")


def _no_column(text: str) -> str:
    """Renamed sources shift columns in parse errors: compare `line N:` only."""
    return _POSITION.sub(r"\1:", text)


def _match_response(want: Any, got: Any, path: str, verify_order: bool) -> str | None:
    """ksqlDB's RQTT compares query rows as a multiset unless `verifyOrder` is set."""
    rows_w = want.get("query") if isinstance(want, dict) else None
    rows_g = got.get("query") if isinstance(got, dict) else None
    if verify_order or not isinstance(rows_w, list) or not isinstance(rows_g, list):
        return matches(want, got, path)
    if len(rows_w) != len(rows_g):
        return f"{path}.query: expected {len(rows_w)} entries, got {len(rows_g)}: {rows_g!r}"
    is_row = [isinstance(e, dict) and "row" in e for e in rows_w]
    for i, (w, g) in enumerate(zip(rows_w, rows_g, strict=True)):
        if not is_row[i]:
            problem = matches(w, g, f"{path}.query[{i}]")
            if problem:
                return problem
    pool = [g for g in rows_g if isinstance(g, dict) and "row" in g]
    for w in [w for w, r in zip(rows_w, is_row, strict=True) if r]:
        hit = next((j for j, g in enumerate(pool) if matches(w, g) is None), None)
        if hit is None:
            return f"{path}.query: no row matching {w!r} in {rows_g!r}"
        pool.pop(hit)
    return None


def _same_record(want: dict[str, Any], got: dict[str, Any]) -> bool:
    return all(
        same_value(want[part], got[part])
        for part in ("key", "value", "timestamp")
        if part in want and not (part == "key" and want["key"] is None and got["key"] is None)
    )


def _aligned(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`got` reordered to match `want` record for record, or unchanged when it cannot be."""
    pool = list(got)
    out = []
    for w in want:
        hit = next((j for j, g in enumerate(pool) if _same_record(w, g)), None)
        if hit is None:
            return got
        out.append(pool.pop(hit))
    return out


def _exists(admin: Any, topic: str) -> bool:
    return kafka.topic_partitions(admin, topic) is not None


def _brief(records: list[dict[str, Any]]) -> str:
    return str([{k: r.get(k) for k in ("key", "value", "timestamp") if k in r} for r in records])[
        :800
    ]
