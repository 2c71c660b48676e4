"""ksqlDB's keywords, and which of them are reserved.

ksqlDB's grammar has a ``nonReserved`` rule: those keywords also work as plain identifiers
(``KEY``, ``DATE``, ``TIMESTAMP``, ``SOURCE``...). Every other keyword is reserved and must be
back-quoted to be used as a name (``TOPIC``, ``SIZE``, ``VALUES``, ``STREAMS``...). Words that
are not keywords at all (``VALUE``, ``ORDER``, ``BIGINT``, ``VARCHAR``) are ordinary identifiers.
This is why the parser is hand-written: which reading a word gets depends on where it is.
"""

from __future__ import annotations

import re

__all__ = ["KEYWORDS", "NON_RESERVED", "RESERVED", "is_reserved", "needs_quotes"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


KEYWORDS: frozenset[str] = _words(
    """
    EMIT CHANGES FINAL SELECT FROM AS ALL DISTINCT WHERE WITHIN WINDOW GROUP BY HAVING LIMIT AT
    OR AND IN NOT EXISTS BETWEEN LIKE ESCAPE IS NULL TRUE FALSE INTEGER DATE TIME TIMESTAMP
    INTERVAL YEAR MONTH DAY HOUR MINUTE SECOND MILLISECOND YEARS MONTHS DAYS HOURS MINUTES
    SECONDS MILLISECONDS ZONE TUMBLING HOPPING SIZE ADVANCE RETENTION GRACE PERIOD CASE WHEN
    THEN ELSE END JOIN FULL OUTER INNER LEFT RIGHT ON PARTITION STRUCT WITH VALUES CREATE TABLE
    TOPIC STREAM STREAMS INSERT DELETE INTO DESCRIBE EXTENDED PRINT EXPLAIN ANALYZE TYPE TYPES
    CAST SHOW LIST TABLES TOPICS QUERY QUERIES TERMINATE LOAD COLUMNS COLUMN PARTITIONS
    FUNCTIONS FUNCTION DROP TO RENAME ARRAY MAP SET DEFINE UNDEFINE RESET SESSION SAMPLE EXPORT
    CATALOG PROPERTIES BEGINNING UNSET RUN SCRIPT DECIMAL KEY CONNECTOR CONNECTORS SINK SOURCE
    NAMESPACE MATERIALIZED VIEW PRIMARY REPLACE ASSERT ADD ALTER VARIABLES PLUGINS HEADERS
    HEADER SYSTEM TIMEOUT SCHEMA SUBJECT ID IF STRING PAUSE RESUME
    """
)

NON_RESERVED: frozenset[str] = _words(
    """
    SHOW TABLES COLUMNS COLUMN PARTITIONS FUNCTIONS FUNCTION SESSION STRUCT MAP ARRAY PARTITION
    INTEGER DATE TIME TIMESTAMP INTERVAL ZONE STRING YEAR MONTH DAY HOUR MINUTE SECOND EXPLAIN
    ANALYZE TYPE TYPES SET RESET IF SOURCE SINK PRIMARY KEY EMIT CHANGES FINAL ESCAPE REPLACE
    ASSERT ALTER ADD HEADER HEADERS GRACE PERIOD DEFINE UNDEFINE VARIABLES PLUGINS SYSTEM TIMEOUT
    SCHEMA SUBJECT ID PAUSE RESUME
    """
)

RESERVED: frozenset[str] = KEYWORDS - NON_RESERVED

_UNQUOTED_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_@]*\Z")
_DIGIT_IDENTIFIER = re.compile(r"[0-9][A-Za-z0-9_@]+\Z")
_NUMBER_LIKE = re.compile(r"[0-9]+([eE][0-9]+)?\Z")


def is_reserved(word: str) -> bool:
    """True if ``word`` (any case) is a keyword that cannot be used as a bare identifier."""
    return word.upper() in RESERVED


def needs_quotes(name: str) -> bool:
    """Whether ksqlDB prints ``name`` back-quoted: anything that would not read back unchanged.

    That is: lower- or mixed-case names, names that are not identifier-shaped, and reserved
    keywords.
    """
    if name != name.upper():
        return True
    if _UNQUOTED_IDENTIFIER.match(name):
        return name in RESERVED
    return not (_DIGIT_IDENTIFIER.match(name) and not _NUMBER_LIKE.match(name))
