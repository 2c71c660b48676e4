"""Kafka's default partitioner (murmur2 of the serialized key), as the Java client computes it.

Table scans answer partition by partition, each in key-byte order (RocksDB's order), so a
pull query lists rows exactly as ksqlDB does.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(length // 4):
        j = i * 4
        k = data[j] | (data[j + 1] << 8) | (data[j + 2] << 16) | (data[j + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra, idx = length % 4, length & ~3
    if extra >= 3:
        h ^= data[idx + 2] << 16
    if extra >= 2:
        h ^= data[idx + 1] << 8
    if extra >= 1:
        h ^= data[idx]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(key: bytes | None, partitions: int) -> int:
    if not key or partitions <= 1:
        return 0
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def scan_order(key: bytes, partitions: int) -> tuple[int, bytes]:
    """Sort key of a stored row in a full table scan: (partition, key bytes)."""
    return partition_of(key, partitions), key
