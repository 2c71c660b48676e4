"""The reconciliation snapshot: verified per-key totals and the offsets they are as of.

Event sourcing's snapshot, used to keep reconciliation cheap: after a run matched, the totals
recomputed from the log (the truth, independent of ksqlDB) are kept with the end offsets they
cover, so the next run reads only the events after them and folds them in.

Encoded as chunk records (columnar JSON, below) in *segments*, and one manifest (JSON):
offsets, counters, what the served side looked like, the segments, and a SHA-256 over the
manifest body and every chunk's bytes, so a damaged or forged record is detected ("corrupt")
instead of trusted. The first segment holds every key (the *base*, written by a full save);
each further one holds only the keys an incremental run changed (a *delta*), applied in order
— so a run after 1 % more events writes ~1 % of the keys, not all of them.
This module has no Kafka I/O (``store.py`` has); it encodes, decodes and judges validity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from cart_pipeline.reconcile.compare import CartKey

#: Bumped when the encoding changes; another version is treated as unusable (full run).
#: 2: segments (a base and deltas) instead of one run of chunks.
VERSION = 2
#: Keys per chunk record before size splitting (~20 bytes each, dictionary-encoded).
CHUNK_KEYS = 16384
#: A chunk record stays below this (the broker's default max message size is 1 MB).
CHUNK_MAX_BYTES = 512 * 1024


class SnapshotUnusable(Exception):
    """No usable snapshot: ``reason`` goes to the run's metadata (e.g. "no snapshot")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SnapshotCorrupt(SnapshotUnusable):
    def __init__(self, detail: str) -> None:
        super().__init__(f"snapshot corrupt ({detail})")


@dataclass(frozen=True)
class TopicState:
    """Where a topic stands now: its identity and each partition's log start and end."""

    topic: str
    topic_id: str
    starts: dict[int, int]
    ends: dict[int, int]


@dataclass(frozen=True)
class Segment:
    """Where one segment's chunk records are: keys ``<prefix><n>`` at offsets first..last."""

    prefix: str
    first: int
    last: int
    chunks: int
    #: Keys encoded in the segment (a delta's count decides when to write a new base).
    keys: int
    #: ``segment_digest`` of its chunks: a later manifest names the segment without its bytes.
    digest: str

    def as_json(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "first": self.first, "last": self.last,
                "chunks": self.chunks, "keys": self.keys, "digest": self.digest}  # fmt: skip


@dataclass
class Snapshot:
    """Per-key totals of ``source_topic`` as of ``offsets``, verified by a matching run."""

    source_topic: str
    topic_id: str
    #: End offsets (read_committed) the totals are as of: the next run reads from here.
    offsets: dict[int, int]
    #: Per partition, one past the last record folded in (the query's lag target).
    data_ends: dict[int, int]
    totals: dict[CartKey, int]
    #: Log-wide counters up to ``offsets``, so an incremental run still reports them whole.
    records: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    tombstones: int = 0
    null_keys: int = 0
    created_at: float = 0.0
    last_full_at: float = 0.0
    runs_since_full: int = 0
    #: The served side when the snapshot was taken: the table's query and its changelog
    #: (sink) topic with the sink end offsets read *before* ``offsets`` (see run.py).
    query_id: str = ""
    sink_topic: str = ""
    sink_topic_id: str = ""
    sink_offsets: dict[int, int] = field(default_factory=dict)
    #: Where a loaded snapshot is stored (base first); empty for one not read from a topic.
    segments: list[Segment] = field(default_factory=list, compare=False)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.created_at)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # lone surrogates (stdlib json decodes them): escape as ASCII
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode()


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def encode_chunks(totals: Mapping[CartKey, int]) -> list[bytes]:
    """The totals as chunk records, each below ``CHUNK_MAX_BYTES``.

    A chunk is columnar and dictionary-encoded — ``{"c": [customers], "i": [items],
    "ci": [customer index per key], "ii": [item index per key], "t": [totals]}`` — so that
    encoding and decoding run in C loops (``zip``/``map``), not a Python loop per key: an
    incremental run reads and writes the whole snapshot, and must stay cheap per key.
    """
    keys, values = list(totals), list(totals.values())
    chunks: list[bytes] = []
    pending = [(n, min(n + CHUNK_KEYS, len(keys))) for n in range(0, len(keys), CHUNK_KEYS)]
    while pending:
        start, end = pending.pop(0)
        raw = _encode_chunk(keys[start:end], values[start:end])
        if len(raw) <= CHUNK_MAX_BYTES:
            chunks.append(raw)
        elif end - start == 1:
            raise ValueError(f"one key's record is {len(raw)} bytes: too large for a snapshot")
        else:
            middle = (start + end) // 2
            pending[:0] = [(start, middle), (middle, end)]
    return chunks


def _encode_chunk(keys: list[CartKey], values: list[int]) -> bytes:
    customers, items = zip(*keys, strict=True)
    unique_c, unique_i = list(dict.fromkeys(customers)), list(dict.fromkeys(items))
    index_c = {c: n for n, c in enumerate(unique_c)}
    index_i = {i: n for n, i in enumerate(unique_i)}
    return _dumps({
        "c": unique_c, "i": unique_i,
        "ci": list(map(index_c.__getitem__, customers)),
        "ii": list(map(index_i.__getitem__, items)),
        "t": values,
    })  # fmt: skip


def _decode_chunk(raw: bytes, into: dict[CartKey, int]) -> None:
    """Fold one chunk into ``into``; raises ValueError/TypeError/etc. on a malformed one."""
    doc = _loads(raw)
    customers, items, ci, ii, totals = doc["c"], doc["i"], doc["ci"], doc["ii"], doc["t"]
    if not len(ci) == len(ii) == len(totals):
        raise ValueError("columns of different lengths")
    # Type checks in C (set of types), not per element in Python: this runs for every key.
    if not set(map(type, customers)) | set(map(type, items)) <= {str}:
        raise ValueError("a customer or item is not a string")
    if not set(map(type, ci)) | set(map(type, ii)) | set(map(type, totals)) <= {int}:
        raise ValueError("an index or total is not an integer")
    if (ci and min(ci) < 0) or (ii and min(ii) < 0):  # would count from the end
        raise ValueError("a negative index")
    keys = zip(map(customers.__getitem__, ci), map(items.__getitem__, ii), strict=True)
    into.update(zip(keys, totals, strict=True))


def manifest_body(snapshot: Snapshot, segments: Sequence[Segment]) -> dict:
    """Everything but the checksum, JSON-ready (partition numbers as strings)."""

    def offsets(values: Mapping[int, int]) -> dict[str, int]:
        return {str(p): o for p, o in sorted(values.items())}

    return {
        "version": VERSION,
        "source_topic": snapshot.source_topic,
        "topic_id": snapshot.topic_id,
        "offsets": offsets(snapshot.offsets),
        "data_ends": offsets(snapshot.data_ends),
        "keys": len(snapshot.totals),
        "segments": [segment.as_json() for segment in segments],
        "records": snapshot.records,
        "rejected": dict(sorted(snapshot.rejected.items())),
        "tombstones": snapshot.tombstones,
        "null_keys": snapshot.null_keys,
        "created_at": snapshot.created_at,
        "last_full_at": snapshot.last_full_at,
        "runs_since_full": snapshot.runs_since_full,
        "query_id": snapshot.query_id,
        "sink_topic": snapshot.sink_topic,
        "sink_topic_id": snapshot.sink_topic_id,
        "sink_offsets": offsets(snapshot.sink_offsets),
    }


def segment_digest(chunks: Sequence[bytes]) -> str:
    """SHA-256 over a segment's chunk records, each length-prefixed."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(len(chunk).to_bytes(8, "big"))
        digest.update(chunk)
    return digest.hexdigest()


def checksum(body: Mapping[str, Any]) -> str:
    """SHA-256 over the manifest body, which holds each segment's digest."""
    return hashlib.sha256(orjson.dumps(dict(body), option=orjson.OPT_SORT_KEYS)).hexdigest()


def encode_manifest(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps({**body, "checksum": checksum(body)})


def decode_manifest(raw: bytes | None) -> dict[str, Any]:
    """The manifest's fields; raises SnapshotCorrupt/SnapshotUnusable when it cannot be used."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise SnapshotCorrupt(f"unreadable manifest: {exc}") from None
    if not isinstance(doc, dict):
        raise SnapshotCorrupt("unreadable manifest: not a JSON object")
    if doc.get("version") != VERSION:
        raise SnapshotUnusable(f"snapshot format version {doc.get('version')!r} is not {VERSION}")
    required = set(manifest_body(Snapshot("", "", {}, {}, {}), [])) | {"checksum"}
    if missing := sorted(required - doc.keys()):
        raise SnapshotCorrupt(f"manifest lacks {', '.join(missing)}")
    return doc


def manifest_segments(manifest: Mapping[str, Any]) -> list[Segment]:
    """The manifest's segments, in the order they apply; raises SnapshotCorrupt."""
    try:
        segments = [
            Segment(
                str(s["prefix"]), s["first"], s["last"], s["chunks"], s["keys"], str(s["digest"])
            )
            for s in manifest["segments"]
        ]
    except (TypeError, KeyError) as exc:
        raise SnapshotCorrupt(f"malformed segments: {exc}") from None
    previous_last = -1
    for segment in segments:
        numbers = (segment.first, segment.last, segment.chunks, segment.keys)
        if not all(type(n) is int and n >= 0 for n in numbers) or (
            segment.chunks and not previous_last < segment.first <= segment.last
        ):
            raise SnapshotCorrupt(f"segment {segment} is not a range after the one before")
        previous_last = segment.last if segment.chunks else previous_last
    return segments


def snapshot_header(manifest: Mapping[str, Any]) -> Snapshot:
    """The snapshot the manifest describes, without its totals (``totals`` is empty).

    Enough to decide whether and from where to read incrementally while the chunks load.
    Checks the manifest's checksum; raises SnapshotCorrupt.
    """
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    if checksum(body) != manifest["checksum"]:
        raise SnapshotCorrupt("checksum mismatch (manifest)")
    segments = manifest_segments(manifest)
    try:
        return Snapshot(
            source_topic=str(body["source_topic"]),
            topic_id=str(body["topic_id"]),
            offsets=_partitions(body["offsets"]),
            data_ends=_partitions(body["data_ends"]),
            totals={},
            records=int(body["records"]),
            rejected={str(k): int(v) for k, v in body["rejected"].items()},
            tombstones=int(body["tombstones"]),
            null_keys=int(body["null_keys"]),
            created_at=float(body["created_at"]),
            last_full_at=float(body["last_full_at"]),
            runs_since_full=int(body["runs_since_full"]),
            query_id=str(body["query_id"]),
            sink_topic=str(body["sink_topic"]),
            sink_topic_id=str(body["sink_topic_id"]),
            sink_offsets=_partitions(body["sink_offsets"]),
            segments=segments,
        )
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise SnapshotCorrupt(f"malformed manifest: {exc}") from None


def decode_snapshot(manifest: Mapping[str, Any], chunks: Sequence[Sequence[bytes]]) -> Snapshot:
    """Check the checksums and counts, then build the snapshot; raises SnapshotCorrupt.

    ``chunks``: per segment of the manifest, its chunk records in order.
    """
    snapshot = snapshot_header(manifest)
    segments = snapshot.segments
    if len(chunks) != len(segments):
        raise SnapshotCorrupt(f"chunks of {len(chunks)} of {len(segments)} segments found")
    for segment, found in zip(segments, chunks, strict=True):
        if len(found) != segment.chunks:
            raise SnapshotCorrupt(
                f"{len(found)} of {segment.chunks} chunks found ({segment.prefix}*)"
            )
        if segment_digest(found) != segment.digest:
            raise SnapshotCorrupt(f"checksum mismatch (chunks {segment.prefix}*)")
    try:
        for found in chunks:  # the base, then each delta over it
            for chunk in found:
                _decode_chunk(chunk, snapshot.totals)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        # A checksum over well-formed garbage still passes: the content must parse too.
        raise SnapshotCorrupt(f"malformed content: {exc}") from None
    if len(snapshot.totals) != manifest["keys"]:
        raise SnapshotCorrupt(f"{len(snapshot.totals)} keys, the manifest says {manifest['keys']}")
    return snapshot


def _partitions(values: Mapping[str, Any]) -> dict[int, int]:
    return {int(p): int(o) for p, o in values.items()}


def unusable_reason(snapshot: Snapshot, state: TopicState) -> str | None:
    """Why ``snapshot`` cannot seed an incremental read of the topic as it is now, or None."""
    if snapshot.source_topic != state.topic:
        return f"snapshot is of topic {snapshot.source_topic!r}, not {state.topic!r}"
    if snapshot.topic_id and state.topic_id and snapshot.topic_id != state.topic_id:
        return "topic re-created since the snapshot (topic id changed)"
    if set(snapshot.offsets) != set(state.ends):
        return (f"partition count changed since the snapshot "
                f"({len(snapshot.offsets)} -> {len(state.ends)})")  # fmt: skip
    for p, offset in sorted(snapshot.offsets.items()):
        if offset > state.ends[p]:
            return (f"topic re-created or truncated: snapshot offset {offset} is beyond the "
                    f"end {state.ends[p]} of partition {p}")  # fmt: skip
        if offset < state.starts[p]:
            return (f"snapshot older than retention: partition {p} now starts at "
                    f"{state.starts[p]}, after the snapshot's offset {offset}")  # fmt: skip
    return None
