"""The engine: catalog + command log + running queries, and the statement dispatcher.

A /ksql request is parsed, then every statement is validated against a sandbox copy of
the catalog (SET/UNSET applying to later statements) before any of them runs, as
ksqlDB's RequestValidator does. Catalog changes are appended to the command topic
first and replayed from it on start.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator

from confluent_kafka import TopicPartition

from cart_pipeline.engine import ddl, insert_select, kafka
from cart_pipeline.engine.catalog.command_log import CommandLog
from cart_pipeline.engine.catalog.model import Catalog, DataSource
from cart_pipeline.engine.catalog.statuses import CommandStatuses
from cart_pipeline.engine.config import DEFAULT_PROPERTIES, Config
from cart_pipeline.engine.errors import (
    COMMAND_QUEUE_CATCHUP_TIMEOUT,
    QUERY_ENDPOINT,
    QUERY_ENDPOINT_MESSAGE,
    KsqlError,
    KsqlStatementError,
    unsupported,
)
from cart_pipeline.engine.insert import Inserter
from cart_pipeline.engine.runtime import processing_log, pull_filter, transient
from cart_pipeline.engine.runtime.health import QueryMonitor
from cart_pipeline.engine.runtime.persistent import PersistentQuery
from cart_pipeline.engine.runtime.planner import (
    AggregatePlan,
    ProjectionPlan,
    plan_select,
)
from cart_pipeline.engine.runtime.stream_planner import StreamPlan
from cart_pipeline.engine.server import entities
from cart_pipeline.engine.sql import ast, parse_statements

LOG = logging.getLogger(__name__)
Entity = dict[str, object]


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.admin = kafka.admin(config.bootstrap_servers)
        self.catalog = Catalog()
        self.queries: dict[str, PersistentQuery] = {}
        self.command_log = CommandLog(
            config.bootstrap_servers, config.command_topic, config.service_id
        )
        self.inserter = Inserter(config.bootstrap_servers)
        self.plog = processing_log.ProcessingLog(
            config.bootstrap_servers, config.processing_log_topic
        )
        self.statuses = CommandStatuses()
        self.ready = threading.Event()
        self.cluster_id = ""
        self._lock = threading.RLock()
        self._transient: dict[str, transient.TransientQuery] = {}
        self.monitor = QueryMonitor(self.admin, lambda: list(self.queries.values()))

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Replay the command topic, then start the surviving persistent queries.

        Safe to call again after a failure (e.g. Kafka not reachable yet): it starts over.
        """
        for query in list(self.queries.values()):
            query.stop()
        self.queries.clear()
        self.catalog = Catalog()
        self.statuses.reset()
        self.cluster_id = self.admin.describe_cluster().result(timeout=30).cluster_id or ""
        kafka.ensure_topic(self.admin, self.config.processing_log_topic, 1, 1)
        self.catalog.sources[processing_log.STREAM_NAME] = DataSource(
            name=processing_log.STREAM_NAME,
            kind="STREAM",
            columns=processing_log.COLUMNS,
            topic=self.config.processing_log_topic,
            key_format="KAFKA",
            value_format="JSON",
            statement=(
                f"CREATE STREAM {processing_log.STREAM_NAME} WITH "
                f"(KAFKA_TOPIC='{self.config.processing_log_topic}', VALUE_FORMAT='JSON');"
            ),
        )
        self.command_log.ensure()
        with self._lock:
            for command in self.command_log.read_all():
                try:
                    self._replay(command.statement, command.properties, command.offset)
                except Exception:
                    LOG.exception(
                        "skipping command %s on replay: %s", command.offset, command.statement
                    )
                self.statuses.applied(command.offset)
            for query in self.queries.values():
                query.start()
        self.monitor.start()
        self.ready.set()
        LOG.info(
            "engine ready: %d sources, %d queries", len(self.catalog.sources), len(self.queries)
        )

    def close(self) -> None:
        self.monitor.stop()
        for query in list(self.queries.values()):
            query.stop()
        for tq in list(self._transient.values()):
            tq.close()
        self.plog.flush()

    def _replay(self, text: str, props: dict[str, str], offset: int) -> None:
        for parsed in parse_statements(text):
            ctx = ddl.Context(
                self, self.catalog, dry_run=False, replay=True, properties=dict(props), seq=offset
            )
            self._record_status(self._dispatch(parsed, ctx))

    # --- /ksql ----------------------------------------------------------------------------

    def default_properties(self) -> dict[str, str]:
        return {
            **DEFAULT_PROPERTIES,
            "ksql.service.id": self.config.service_id,
            "bootstrap.servers": self.config.bootstrap_servers,
        }

    def execute(self, text: str, overrides: dict[str, str]) -> list[Entity]:
        """Run a /ksql request: validate all statements, then run them in order."""
        parsed = parse_statements(text)
        _refuse_unimplemented_properties(overrides)
        with self._lock:
            sandbox = ddl.Context(
                self, self.catalog.copy(), dry_run=True, properties=dict(overrides)
            )
            for ps in parsed:
                self._guarded(ps, sandbox, [])
            real = ddl.Context(self, self.catalog, dry_run=False, properties=dict(overrides))
            out: list[Entity] = []
            for ps in parsed:
                entity = self._guarded(ps, real, out)
                if entity is not None:
                    out.append(entity)
            return out

    def _guarded(
        self, ps: ast.ParsedStatement, ctx: ddl.Context, done: list[Entity]
    ) -> Entity | None:
        try:
            return self._dispatch(ps, ctx)
        except KsqlStatementError as exc:
            if exc.statement_text is None:
                exc.statement_text = ps.text
            exc.entities = list(done)
            raise
        except KsqlError:
            raise
        except Exception as exc:
            LOG.exception("statement failed: %s", ps.text)
            raise KsqlStatementError(
                str(exc) or type(exc).__name__, ps.text, entities=list(done)
            ) from exc

    def _dispatch(self, ps: ast.ParsedStatement, ctx: ddl.Context) -> Entity | None:
        stmt, text = ps.statement, ps.text
        match stmt:
            case ast.SetProperty(name=name, value=value):
                ctx.properties[name] = value
                return None
            case ast.UnsetProperty(name=name):
                ctx.properties.pop(name, None)
                return None
            case ast.Query():
                raise KsqlStatementError(QUERY_ENDPOINT_MESSAGE, text, QUERY_ENDPOINT)
            case ast.TerminateQuery(query_id=str(qid)) if push := self._live_push(qid):
                # a push query is not a command: closed here, never written to the command topic
                if not ctx.dry_run and not ctx.replay:
                    self.close_query(push.query_id)
                return entities.terminated_push_query(text, push.query_id)
            case (
                ast.CreateSource()
                | ast.CreateAsSelect()
                | ast.DropSource()
                | ast.TerminateQuery()
                | ast.InsertInto()
            ):
                return self._command(stmt, text, ctx)
            case ast.InsertValues():
                target, key_bytes, value_bytes, ts = self.inserter.prepare(ctx.catalog, stmt)
                if not ctx.dry_run and not ctx.replay:
                    self.inserter.send(target.topic, key_bytes, value_bytes, ts)
                return None
            case ast.ShowStatement(subject="QUERIES", extended=True):
                return entities.query_descriptions(self, text)
            case ast.ShowStatement(subject=subject, all_topics=all_topics):
                return self._show(subject, text, all_topics, ctx.properties)
            case ast.DescribeSource(name=name, extended=extended):
                described = ctx.catalog.source(name)
                if described is None:
                    raise KsqlStatementError(
                        f"Could not find STREAM/TABLE '{name}' in the Metastore"
                    )
                return entities.describe(self, described, text, extended)
            case ast.Explain(query_id=str(query_id)):
                return entities.explain(self, query_id, text)
            case ast.DescribeSources(kind=kind, extended=extended):
                return entities.describe_all(self, kind, text, extended)
            case ast.UnsupportedStatement(kind=kind):
                ddl.refuse_alter_of_source(ctx.catalog, kind, stmt.text)
                raise unsupported(kind)
            case _:
                raise unsupported(type(stmt).__name__)

    def _command(self, stmt: ast.Statement, text: str, ctx: ddl.Context) -> Entity:
        if (
            isinstance(stmt, ast.CreateSource | ast.CreateAsSelect)
            and stmt.if_not_exists
            and ctx.catalog.source(stmt.name) is not None
        ):
            ctx.dry_run, was = True, ctx.dry_run
            try:
                return (
                    ddl.create_source(ctx, stmt, text)
                    if isinstance(stmt, ast.CreateSource)
                    else ddl.create_as_select(ctx, stmt, text)
                )
            finally:
                ctx.dry_run = was
        written = not ctx.dry_run and not ctx.replay
        if written:
            ctx.seq = self.command_log.append(text, dict(ctx.properties))
        try:
            entity = self._apply(stmt, text, ctx)
            if written:
                self._record_status(entity)
        finally:
            if written:
                self.statuses.applied(ctx.seq)
        return entity

    @staticmethod
    def _apply(stmt: ast.Statement, text: str, ctx: ddl.Context) -> Entity:
        if isinstance(stmt, ast.CreateSource):
            return ddl.create_source(ctx, stmt, text)
        if isinstance(stmt, ast.CreateAsSelect):
            return ddl.create_as_select(ctx, stmt, text)
        if isinstance(stmt, ast.DropSource):
            return ddl.drop_source(ctx, stmt, text)
        if isinstance(stmt, ast.InsertInto):
            return insert_select.insert_into(ctx, stmt, text)
        assert isinstance(stmt, ast.TerminateQuery)
        return ddl.terminate(ctx, stmt, text)

    def _record_status(self, entity: Entity | None) -> None:
        if entity is not None and entity.get("@type") == "currentStatus":
            status = entity["commandStatus"]
            assert isinstance(status, dict)
            self.statuses.put(str(entity["commandId"]), status)

    def await_command(self, seq: int) -> None:
        """Block until command `seq` has been applied (ksqlDB's `commandSequenceNumber`)."""
        timeout = self.config.command_response_timeout_ms / 1000
        if not self.statuses.wait_applied(seq, timeout):
            raise KsqlError(
                "Timed out while waiting for a previous command to execute. "
                f"command sequence number: {seq}",
                COMMAND_QUEUE_CATCHUP_TIMEOUT,
            )

    def _show(self, subject: str, text: str, all_topics: bool, props: dict[str, str]) -> Entity:
        if subject == "STREAMS":
            return entities.streams(self, text)
        if subject == "TABLES":
            return entities.tables(self, text)
        if subject == "QUERIES":
            return entities.queries(self, text)
        if subject == "TOPICS":
            return entities.topics(self, text, all_topics)
        if subject == "PROPERTIES":
            return entities.properties(self, text, props)
        raise unsupported(f"SHOW {subject}")

    # --- persistent queries ---------------------------------------------------------------

    def register_query(
        self,
        query_id: str,
        plan: AggregatePlan | ProjectionPlan | StreamPlan,
        sink: DataSource,
        props: dict[str, str],
        start: bool,
    ) -> None:
        query = PersistentQuery(query_id, plan, sink, self.config, props, self.plog)
        self.queries[query_id] = query
        if start:
            query.start()

    def stop_query(self, query_id: str, cleanup: bool) -> None:
        query = self.queries.pop(query_id, None)
        if query is not None:
            query.stop()
        if cleanup and query is not None and not self._replaying():
            kafka.delete_topics(self.admin, [query.changelog_topic])
            try:
                futures = self.admin.delete_consumer_groups([query.group_id], request_timeout=10)
                for fut in futures.values():
                    fut.result(timeout=10)
            except Exception:
                LOG.debug("could not delete group of %s", query_id, exc_info=True)

    def _replaying(self) -> bool:
        return not self.ready.is_set()

    def query_state(self, query_id: str) -> str:
        query = self.queries.get(query_id)
        return query.state if query is not None else "TERMINATED"

    def query_offsets(self, query_id: str) -> Entity:
        """Committed offset vs log end per input partition: the query's lag."""
        info = self.catalog.queries[query_id]
        group = self.config.query_group_id(query_id)
        summaries = []
        c = kafka.consumer(self.config.bootstrap_servers, group)
        try:
            for name in info.sources:
                src = self.catalog.source(name)
                if src is None:
                    continue
                n = kafka.topic_partitions(self.admin, src.topic) or 0
                committed = c.committed(
                    [TopicPartition(src.topic, p) for p in range(n)], timeout=10
                )
                marks = kafka.end_offsets(c, src.topic, n)
                summaries.append(
                    {
                        "kafkaTopic": src.topic,
                        "offsets": [
                            {
                                "partition": tp.partition,
                                "logStartOffset": marks[tp.partition][0],
                                "logEndOffset": marks[tp.partition][1],
                                "consumerOffset": max(tp.offset, 0),
                            }
                            for tp in committed
                        ],
                    }
                )
        finally:
            c.close()
        return {"groupId": group, "topicSummaries": summaries}

    # --- transient queries ----------------------------------------------------------------

    def prepare_query(self, text: str, overrides: dict[str, str]) -> transient.TransientQuery:
        parsed = parse_statements(text)
        if len(parsed) != 1:
            raise KsqlStatementError("Expected exactly one statement", text)
        ps = parsed[0]
        stmt = ps.statement
        if not isinstance(stmt, ast.Query):
            raise KsqlStatementError(
                "The following statement types should be issued to the /ksql endpoint: "
                + type(stmt).__name__,
                ps.text,
            )
        try:
            with self._lock:
                pull_filter.check_before_planning(self.catalog, stmt, overrides)
                plan = plan_select(self.catalog, stmt)
            return self._start_transient(plan, stmt, overrides, ps.text)
        except KsqlStatementError as exc:
            exc.statement_text = exc.statement_text or ps.text
            raise

    def _start_transient(
        self, plan: transient.SelectPlan, stmt: ast.Query, props: dict[str, str], text: str
    ) -> transient.TransientQuery:
        source = plan.source
        bootstrap = self.config.bootstrap_servers
        limit_enabled = props.get("ksql.query.pull.limit.clause.enabled", "true").lower()
        if stmt.emit is None and stmt.limit is not None and limit_enabled == "false":
            raise KsqlStatementError(
                "LIMIT clause in pull queries is currently disabled. You can enable them by "
                "setting ksql.query.pull.limit.clause.enabled=true. See "
                "https://cnfl.io/queries for more info.\nAdd EMIT CHANGES if you intended "
                "to issue a push query."
            )
        if stmt.emit is None:
            scan_enabled = props.get("ksql.query.pull.table.scan.enabled", "true").lower()
            if scan_enabled == "false" and source.kind != "TABLE":
                raise unsupported(
                    "pull queries needing a table scan while "
                    "ksql.query.pull.table.scan.enabled=false"
                )
            if source.kind == "TABLE":
                pull_filter.require_lookup(source, stmt.where, props)
            if source.kind == "TABLE":
                query = self.queries.get(source.writer_query or "")
                if query is None:
                    raise transient.refuse_unmaterialized(source)
                rows = transient.table_rows(plan, query.store)
                return transient.TransientQuery(
                    transient.pull_query_id(), plan, True, rows, statement_text=text
                )
            tq = transient.TransientQuery(
                transient.pull_query_id(), plan, True, iter(()), statement_text=text
            )
            tq.rows = transient.stream_scan(bootstrap, plan, tq.closed, self._plog_for(tq))
            return tq
        if stmt.emit == "FINAL":
            raise unsupported("EMIT FINAL")
        tq = transient.TransientQuery(
            transient.push_query_id(source), plan, False, iter(()), statement_text=text
        )
        reset = props.get("auto.offset.reset", "latest")
        rows = transient.push_rows(bootstrap, plan, reset, tq, self._plog_for(tq))
        tq.rows = self._tracked(tq, rows)
        self._transient[tq.query_id] = tq
        return tq

    def _plog_for(self, tq: transient.TransientQuery) -> transient.DeserializationLog:
        return functools.partial(self.plog.deserialization_error, tq.query_id)

    def _tracked(
        self, tq: transient.TransientQuery, rows: Iterator[list[object]]
    ) -> Iterator[list[object]]:
        """A push query stays live (listed by SHOW QUERIES) until its consumer is closed."""
        try:
            yield from rows
        finally:
            self.forget_query(tq.query_id)

    def live_push_queries(self) -> list[transient.TransientQuery]:
        """Push queries still serving a client; closed ones are dropped (their consumer is
        closed by the thread draining them within one poll)."""
        live = []
        for query_id, tq in list(self._transient.items()):
            if tq.closed.is_set():
                self._transient.pop(query_id, None)
            else:
                live.append(tq)
        return live

    def close_query(self, query_id: str) -> bool:
        tq = self._transient.pop(query_id, None)
        if tq is None:
            return False
        tq.close()
        return True

    def _live_push(self, query_id: str) -> transient.TransientQuery | None:
        """The live push query with this id (ksqlDB's QueryId compares case-insensitively)."""
        wanted = query_id.upper()
        return next((q for q in self.live_push_queries() if q.query_id.upper() == wanted), None)

    def forget_query(self, query_id: str) -> None:
        self._transient.pop(query_id, None)


# Properties that change results in ways the engine does not implement: refused, not ignored.
_UNIMPLEMENTED = {
    "ksql.new.query.planner.enabled": "true",
}


def _refuse_unimplemented_properties(props: dict[str, str]) -> None:
    for name, value in _UNIMPLEMENTED.items():
        if props.get(name, "").lower() == value:
            raise unsupported(f"property {name}={value}")
