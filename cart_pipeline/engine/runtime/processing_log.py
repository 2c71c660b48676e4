"""ksqlDB's processing log: records a query could not process, never fatal to the query.

Written (outside query transactions, as ksqlDB does) to `<service id>ksql_processing_log`,
declared as the `KSQL_PROCESSING_LOG` stream. Logger names are ksqlDB's:
`processing.<query id>.<step>`, for persistent and transient (`transient_...`) queries alike.
"""

from __future__ import annotations

import base64
import logging
import threading
import time

import orjson

from cart_pipeline.engine import kafka
from cart_pipeline.engine.catalog.model import Column
from cart_pipeline.engine.types import BIGINT, INTEGER, STRING, SqlType

LOG = logging.getLogger(__name__)
STREAM_NAME = "KSQL_PROCESSING_LOG"
LOGGER_PREFIX = "processing."  # ksqlDB's ProcessingLoggerFactory prefix

_STR_ARRAY = SqlType("ARRAY", children=(STRING,))


def _struct(**fields: SqlType) -> SqlType:
    return SqlType("STRUCT", children=tuple(fields.values()), field_names=tuple(fields))


MESSAGE_TYPE = SqlType(
    "STRUCT",
    children=(
        INTEGER,
        _struct(
            TARGET=STRING, ERRORMESSAGE=STRING, RECORDB64=STRING, CAUSE=_STR_ARRAY, topic=STRING
        ),
        _struct(ERRORMESSAGE=STRING, RECORD=STRING, CAUSE=_STR_ARRAY),
        _struct(ERRORMESSAGE=STRING),
        _struct(TARGET=STRING, ERRORMESSAGE=STRING, RECORD=STRING, CAUSE=_STR_ARRAY, topic=STRING),
        _struct(ERRORMESSAGE=STRING, THREADNAME=STRING, CAUSE=_STR_ARRAY),
    ),
    field_names=(
        "TYPE",
        "DESERIALIZATIONERROR",
        "RECORDPROCESSINGERROR",
        "PRODUCTIONERROR",
        "SERIALIZATIONERROR",
        "KAFKASTREAMSTHREADERROR",
    ),
)
COLUMNS = (
    Column("LOGGER", STRING),
    Column("LEVEL", STRING),
    Column("TIME", BIGINT),
    Column("MESSAGE", MESSAGE_TYPE),
)

_EMPTY = {
    "DESERIALIZATIONERROR": None,
    "RECORDPROCESSINGERROR": None,
    "PRODUCTIONERROR": None,
    "SERIALIZATIONERROR": None,
    "KAFKASTREAMSTHREADERROR": None,
}


class ProcessingLog:
    """Thread-safe writer of processing-log records."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = kafka.producer(bootstrap)
        self._lock = threading.Lock()

    def _write(self, logger: str, message: dict[str, object]) -> None:
        record = {
            "LOGGER": LOGGER_PREFIX + logger,
            "LEVEL": "ERROR",
            "TIME": int(time.time() * 1000),
            "MESSAGE": message,
        }
        with self._lock:
            try:
                self._producer.produce(self.topic, orjson.dumps(record))
                self._producer.poll(0)
            except Exception:  # the log must never take a query down
                LOG.exception("could not write to the processing log")

    def deserialization_error(
        self, query_id: str, topic: str, target: str, error: str, raw: bytes | None
    ) -> None:
        LOG.warning("%s: skipping record from %s: %s", query_id, topic, error)
        self._write(
            f"{query_id}.KsqlTopic.Source.deserializer",
            {
                **_EMPTY,
                "TYPE": 0,
                "DESERIALIZATIONERROR": {
                    "TARGET": target,
                    "ERRORMESSAGE": f"Failed to deserialize {target} from topic: {topic}. {error}",
                    "RECORDB64": base64.b64encode(raw).decode() if raw is not None else None,
                    "CAUSE": [error],
                    "topic": topic,
                },
            },
        )

    def record_processing_error(self, query_id: str, logger: str, error: str, row: object) -> None:
        LOG.warning("%s: %s", query_id, error)
        self._write(
            f"{query_id}.{logger}",
            {
                **_EMPTY,
                "TYPE": 1,
                "RECORDPROCESSINGERROR": {
                    "ERRORMESSAGE": error,
                    "RECORD": orjson.dumps(row, default=str).decode(),
                    "CAUSE": [],
                },
            },
        )

    def flush(self) -> None:
        with self._lock:
            self._producer.flush(5)
