"""Pre-encoded key/value fragments so each record costs one bytes concatenation.

A value is ``head[customer] + tail[item, qty]`` where ``head`` is
``{"customer":<json str>,"item":`` and ``tail`` is ``<json str>,"qty":<int>}``: exactly
``orjson.dumps({"customer": c, "item": i, "qty": q})`` (orjson writes no whitespace and
keeps dict order), but without building a dict or running the encoder per record. The
strings are JSON-encoded once per pool entry by orjson itself, so escaping of quotes,
backslashes and non-ASCII text is orjson's, byte for byte.

When the (item, qty) table would be too big (huge catalog x large max_quantity) tails fall
back to two pieces, ``item_part[item] + qty_part[qty]``: one more concatenation per record.

The fragment tables are also kept as numpy *object* arrays: a batch is then gathered by fancy
indexing and concatenated by numpy's elementwise ``+`` (``PyNumber_Add`` on each pair of bytes
in a C loop), then turned into a list once. Same bytes as ``map(add, ...)`` over Python lists,
~2x faster (BENCHMARKS.md, "Generation"): no per-record ``__getitem__``/``add`` call from an
iterator, and no ``tolist()`` of the index arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import orjson

Int64Array = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

#: Largest fused (item, qty) tail table, in entries (~80 bytes each).
FUSED_TAIL_LIMIT = 1 << 19


class EventEncoder:
    """Turns index arrays into record keys and values.

    ``extra_values`` are complete values (the malformed ones) appended to the head table;
    they pair with an empty tail, see :meth:`extra_head` and :meth:`encode`.
    """

    def __init__(
        self,
        customers: Sequence[str],
        items: Sequence[str],
        max_quantity: int,
        extra_values: Sequence[bytes] = (),
        *,
        fused_tail_limit: int = FUSED_TAIL_LIMIT,
    ) -> None:
        self.keys: list[bytes] = [name.encode("utf-8") for name in customers]
        self._n_customers = len(self.keys)
        self._heads: list[bytes] = [
            b'{"customer":' + orjson.dumps(name) + b',"item":' for name in customers
        ]
        self._heads.extend(extra_values)
        self._max_quantity = max_quantity
        self._width = 2 * max_quantity + 1  # qty -max..max, 0 unused
        quantities = [str(q).encode() + b"}" for q in range(-max_quantity, max_quantity + 1)]
        item_parts = [orjson.dumps(name) + b',"qty":' for name in items]
        self.fused = len(item_parts) * self._width <= fused_tail_limit
        # Last entry of each table is b"": the tail of a complete (extra) value.
        self._qty_parts: list[bytes] = [*quantities, b""]
        if self.fused:
            self._tails = [part + qty for part in item_parts for qty in quantities]
        else:
            self._tails = item_parts
        self._tails.append(b"")
        self.empty_tail = len(self._tails) - 1
        self._key_table = _object_array(self.keys)
        self._head_table = _object_array(self._heads)
        self._tail_table = _object_array(self._tails)
        self._qty_table = _object_array(self._qty_parts)

    def extra_head(self, index: Int64Array) -> Int64Array:
        """Head index of ``extra_values[index]``."""
        return self._n_customers + index

    def encode(
        self,
        key_customers: Int64Array,
        heads: Int64Array,
        items: Int64Array,
        qtys: Int64Array,
    ) -> tuple[list[bytes], list[bytes]]:
        """Keys and values for one batch of records.

        ``key_customers`` picks the key, ``heads`` the head (a customer index, or
        :meth:`extra_head` for a complete extra value), ``items``/``qtys`` the tail;
        ``items < 0`` marks a record whose head is already the complete value.
        """
        keys: list[bytes] = self._key_table[key_customers].tolist()
        complete = items < 0
        head_parts = self._head_table[heads]
        if self.fused:
            tails = items * self._width + (qtys + self._max_quantity)
            tails[complete] = self.empty_tail
            values: list[bytes] = (head_parts + self._tail_table[tails]).tolist()
            return keys, values
        tails = np.where(complete, self.empty_tail, items)
        slots = np.where(complete, self._width, qtys + self._max_quantity)
        pairs = head_parts + self._tail_table[tails]
        values = (pairs + self._qty_table[slots]).tolist()
        return keys, values


def _object_array(parts: Sequence[bytes]) -> ObjectArray:
    """A 1-d object array holding exactly these bytes objects (no copies, no conversion)."""
    table = np.empty(len(parts), dtype=object)
    table[:] = parts
    return table
