"""Persistent aggregation query (CTAS ... GROUP BY) with exactly-once results.

The one commit path, per commit interval, in one Kafka transaction:
  sink records + changelog records + the consumed offsets (send_offsets_to_transaction,
  under the query's consumer group), then the state store publishes its changes.
A restart (or kill -9) fences the previous producer via the stable transactional.id,
restores state from the compacted changelog read read_committed, and resumes from the
committed offsets: nothing is counted twice, nothing is lost.
Partitions are assigned directly (a single instance owns them all), so a restart does
not wait out a dead group member's session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from cart_pipeline.engine import kafka
from cart_pipeline.engine.catalog.model import DataSource
from cart_pipeline.engine.config import Config
from cart_pipeline.engine.runtime.batch import BatchAggregator, batch_aggregator
from cart_pipeline.engine.runtime.planner import AggregatePlan, ProjectionPlan
from cart_pipeline.engine.runtime.processing_log import ProcessingLog
from cart_pipeline.engine.runtime.processors import (
    AggregateProcessor,
    Processor,
    ProjectionProcessor,
    RecordDecoder,
    StreamProcessor,
)
from cart_pipeline.engine.runtime.profiling import ThreadProfile, start_thread_profile
from cart_pipeline.engine.runtime.serde import key_serde, value_serde
from cart_pipeline.engine.runtime.state import MemoryStore, StoredRow
from cart_pipeline.engine.runtime.stream_planner import StreamPlan
from cart_pipeline.engine.runtime.table_aggregate import TableAggregateProcessor

LOG = logging.getLogger(__name__)
MAX_QUERY_ERRORS = 10  # ksqlDB's ksql.query.error.max.queue.size
BATCH = 10_000  # records per consume(): fewer calls into librdkafka per record
PREFETCH_KIB = 16 * 1024


class PersistentQuery:
    """Runs one CTAS aggregation on its own thread until stopped."""

    def __init__(
        self,
        query_id: str,
        plan: AggregatePlan | ProjectionPlan | StreamPlan,
        sink: DataSource,
        config: Config,
        properties: dict[str, str],
        processing_log: ProcessingLog,
    ) -> None:
        self.query_id = query_id
        self.plan = plan
        self.sink = sink
        self.config = config
        self.group_id = config.query_group_id(query_id)
        self.changelog_topic = config.changelog_topic(query_id)
        self.commit_interval = int(properties.get("ksql.streams.commit.interval.ms", "2000")) / 1000
        self.cache_enabled = (
            int(properties.get("ksql.streams.cache.max.bytes.buffering", "10000000")) > 0
        )
        self.offset_reset = properties.get("auto.offset.reset", "latest")
        self.plog = processing_log
        self.store = MemoryStore()
        self._committed_positions: dict[int, int] = {}  # partition -> committed position
        self._profile: ThreadProfile | None = None
        self.state = "RUNNING"  # or "ERROR" (see errors) or "TERMINATED"
        self.errors: deque[dict[str, object]] = deque(maxlen=MAX_QUERY_ERRORS)
        self._terminated = False
        self.ready = threading.Event()  # set once state is restored and consuming started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"query-{query_id}", daemon=True)
        self._decoder = RecordDecoder(query_id, plan.source, processing_log)
        self.sink_key = key_serde(sink.key_format, sink.key_columns)
        self._sink_value = value_serde(sink.value_format, sink.value_columns, sink.value_features)
        self._sink_keyed = bool(sink.key_columns)
        aggregate = TableAggregateProcessor if plan.source.kind == "TABLE" else AggregateProcessor
        self.processor: Processor = (
            aggregate(query_id, plan, self.sink_key, processing_log)
            if isinstance(plan, AggregatePlan)
            else StreamProcessor(plan, self.sink_key)
            if isinstance(plan, StreamPlan)
            else ProjectionProcessor(plan, self.sink_key)
        )
        # a whole consume() batch per call for the common aggregation shape; only with the
        # record cache on: with it off, ksqlDB emits one row per input record
        self._batch: BatchAggregator | None = None
        if self.cache_enabled and isinstance(self.processor, AggregateProcessor):
            assert isinstance(plan, AggregatePlan)
            self._batch = batch_aggregator(
                plan, self.processor, self._decoder, self.sink_key, sink.key_format
            )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._terminated = True
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self.state = "TERMINATED" if self.state != "ERROR" else self.state

    # --- failures (ksqlDB's ERROR state and queryErrors) ------------------------------------

    def record_error(self, message: str, error_type: str) -> None:
        """Enter ERROR, keeping the error as ksqlDB's QueryError (type USER/SYSTEM/UNKNOWN)."""
        self.errors.append(
            {"timestamp": int(time.time() * 1000), "errorMessage": message, "type": error_type}
        )
        self.state = "ERROR"
        self.ready.clear()

    def fail(self, message: str, error_type: str = "USER") -> None:
        """An unrecoverable error seen from outside: stop processing, stay listed as ERROR."""
        self.record_error(message, error_type)
        self._stop.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def restart(self) -> None:
        """Retry a failed query (ksqlDB retries with back-off); never a terminated one."""
        if self._terminated or self._thread.is_alive():
            return
        self.state = "RUNNING"
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"query-{self.query_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        self._profile = start_thread_profile(self.query_id)
        try:
            while not self._stop.is_set():
                try:
                    self._run_once()
                    return
                except Exception as exc:
                    LOG.exception("query %s failed; restarting from the last commit", self.query_id)
                    if not self._stop.is_set():
                        self.record_error(f"{type(exc).__name__}: {exc}", "SYSTEM")
                    self._stop.wait(1.0)
        finally:
            if self._profile is not None:
                self._profile.close()

    # --- the loop -------------------------------------------------------------------------

    def _run_once(self) -> None:
        bootstrap = self.config.bootstrap_servers
        admin = kafka.admin(bootstrap)
        partitions = kafka.topic_partitions(admin, self.plan.source.topic) or 1
        kafka.ensure_topic(
            admin, self.changelog_topic, partitions, 1, {"cleanup.policy": "compact"}
        )
        producer = kafka.producer(bootstrap, transactional_id=self.group_id)
        producer.init_transactions(60)  # fences a previous instance, aborts its open txn
        self.store = self._restore(partitions)
        consumer = kafka.consumer(
            bootstrap,
            self.group_id,
            **{
                "enable.partition.eof": False,
                "auto.offset.reset": self.offset_reset,
                # prefetch bounded well below librdkafka's 64 MiB default: memory should
                # grow with the table's keys, not with how far behind the input it is
                "queued.max.messages.kbytes": PREFETCH_KIB,
            },
        )
        try:
            self._consume(producer, consumer, partitions)
        finally:
            consumer.close()

    def _restore(self, partitions: int) -> MemoryStore:
        store = MemoryStore()
        c = kafka.consumer(self.config.bootstrap_servers)
        try:
            tps = [
                TopicPartition(self.changelog_topic, p, OFFSET_BEGINNING) for p in range(partitions)
            ]
            ends = kafka.end_offsets(c, self.changelog_topic, partitions)
            pending = {p for p, (lo, hi) in ends.items() if hi > lo}
            c.assign(tps)
            deadline = time.monotonic() + 120
            while pending and not self._stop.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"restoring {self.changelog_topic} timed out")
                for msg in c.consume(num_messages=BATCH, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard(msg.partition())
                        continue
                    key = msg.key() or b""
                    value = msg.value()
                    store.put(key, None if value is None else _decode_state(value))
            store.commit()
        finally:
            c.close()
        LOG.info("query %s restored state from %s", self.query_id, self.changelog_topic)
        return store

    def _consume(self, producer: Producer, consumer: Consumer, partitions: int) -> None:
        topic = self.plan.source.topic
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=30
        )
        default = OFFSET_BEGINNING if self.offset_reset == "earliest" else OFFSET_END
        consumer.assign(
            [
                TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else default)
                for tp in committed
            ]
        )
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        # what the group has committed, so a commit only happens when positions moved
        self._committed_positions = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        in_txn = False
        last_commit = time.monotonic()
        self.ready.set()
        process, batch = self._process, self._batch
        if batch is not None:
            batch.reset()  # a restart: what was not committed is consumed again
        while not self._stop.is_set():
            # consume() waits until the batch is full or the timeout ends: never past the
            # next commit, or a slow input would delay every commit (and its visibility)
            wait = last_commit + self.commit_interval - time.monotonic()
            msgs = consumer.consume(num_messages=BATCH, timeout=min(0.2, max(wait, 0.0)))
            if batch is not None:
                # state only (output is produced at commit), so the transaction can begin
                # after the batch, if it held a record
                if batch.process(msgs, self.store) and not in_txn:
                    producer.begin_transaction()
                    in_txn = True
                msgs = []
            for msg in msgs:
                if msg.error() is not None:
                    continue
                if not in_txn:
                    producer.begin_transaction()
                    in_txn = True
                process(msg, producer)
            producer.poll(0)
            if time.monotonic() - last_commit >= self.commit_interval:
                self._commit_positions(producer, consumer, tps, in_txn)
                in_txn = False
                last_commit = time.monotonic()
                if self._profile is not None:
                    self._profile.maybe_dump()
        # graceful stop: do not lose work already processed
        self._commit_positions(producer, consumer, tps, in_txn)

    def _commit_positions(
        self, producer: Producer, consumer: Consumer, tps: list[TopicPartition], in_txn: bool
    ) -> None:
        """Commit the consumer's positions, as Kafka Streams does, not last offset + 1.

        A read_committed consumer's position moves past transaction markers, so committing
        it lets a caught-up query show lag 0 behind transactional producers. Positions that
        moved past markers only are committed in an offsets-only transaction; unchanged
        positions with no records are never committed (empty transactions back to back
        would only add load and stall the loop).
        """
        positions = {tp.partition: tp.offset for tp in consumer.position(tps) if tp.offset >= 0}
        moved = any(self._committed_positions.get(p) != o for p, o in positions.items())
        if not in_txn:
            if not moved:
                return
            producer.begin_transaction()
        self._commit(producer, consumer, tps[0].topic, positions)
        self._committed_positions.update(positions)

    def _commit(
        self, producer: Producer, consumer: Consumer, topic: str, positions: dict[int, int]
    ) -> None:
        if self.cache_enabled:
            if self._batch is not None:
                self._batch.flush(self.store)
            self._emit_dirty(producer)
        offsets = [TopicPartition(topic, p, o) for p, o in positions.items()]
        try:
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 60)
            producer.commit_transaction(60)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.txn_requires_abort():
                producer.abort_transaction(60)
            self.store.rollback()
            raise
        self.store.commit()

    # --- per record -----------------------------------------------------------------------

    def _process(self, msg: Message, producer: Producer) -> None:
        record = self._decoder.decode(msg)
        if record is None:
            return
        if isinstance(self.processor, StreamProcessor):  # stateless: straight to the sink
            for out_key, out_values, out_ts in self.processor.stream_records(record):
                out = None if out_values is None else self._sink_value.serialize(out_values)
                _produce(producer, self.sink.topic, out_key, out, out_ts)
            return
        for key, row in self.processor.process(record, self.store):
            if not self.cache_enabled:
                if row is not None and row.hidden:
                    prev = self.store.get(key)
                    self._emit_hidden(producer, key, row, prev is not None and not prev.hidden)
                else:
                    self._emit(producer, key, row)
            self.store.put(key, row)

    def _emit_hidden(self, producer: Producer, key: bytes, row: StoredRow, shown: bool) -> None:
        """A group HAVING hides: its state to the changelog, and a delete to the sink when
        the sink last had a row for it (`shown`), as ksqlDB's table filter does."""
        if shown:
            _produce(producer, self.sink.topic, key, None, row.rowtime)
        _produce(producer, self.changelog_topic, key, _encode_state(row), row.rowtime)

    def _emit(self, producer: Producer, key: bytes, row: StoredRow | None) -> None:
        value = None if row is None else self._sink_value.serialize(row.values)
        state = None if row is None else _encode_state(row)
        ts = row.rowtime if row else int(time.time() * 1000)
        _produce(producer, self.sink.topic, key if self._sink_keyed else None, value, ts)
        _produce(producer, self.changelog_topic, key, state, ts)

    def _emit_dirty(self, producer: Producer) -> None:
        """The record cache's output: each key changed since the last commit, once (as
        `_emit`, unrolled: with many keys this is a large part of the work)."""
        sink_topic, changelog = self.sink.topic, self.changelog_topic
        keyed, serialize, produce = self._sink_keyed, self._sink_value.serialize, producer.produce
        for key, row in self.store.dirty_items():
            if row is None:
                self._emit(producer, key, row)
                continue
            if row.hidden:
                self._emit_hidden(producer, key, row, self.store.committed_get(key) is not None)
                continue
            ts = row.rowtime
            value = serialize(row.values)
            state = _encode_state(row)
            try:
                produce(sink_topic, value, key if keyed else None, timestamp=ts)
            except BufferError:
                _produce(producer, sink_topic, key if keyed else None, value, ts)
            try:
                produce(changelog, state, key, timestamp=ts)
            except BufferError:
                _produce(producer, changelog, key, state, ts)


def _produce(
    producer: Producer, topic: str, key: bytes | None, value: bytes | None, ts: int
) -> None:
    while True:
        try:
            producer.produce(topic, value, key, timestamp=ts)
            return
        except BufferError:
            producer.poll(0.1)


def _encode_state(row: StoredRow) -> bytes:
    state = {"k": row.key, "v": row.values, "t": row.rowtime, "s": row.states}
    if row.hidden:
        state["h"] = True
    return orjson.dumps(state)


def _decode_state(data: bytes) -> StoredRow:
    d = orjson.loads(data)
    return StoredRow(tuple(d["k"]), tuple(d["v"]), int(d["t"]), tuple(d["s"]), bool(d.get("h")))


QueryFactory = Callable[..., PersistentQuery]
