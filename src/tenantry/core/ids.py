"""Time-ordered UUIDs (version 7, RFC 9562) made here, so no library can silently fall back to uuid4."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_millis = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48-bit Unix milliseconds, a 12-bit counter, then 62 random bits.

    Keys that grow with time keep the (tenant_id, id) B-tree appending at its right edge and make
    `id` a stable keyset-pagination order. The counter (RFC 9562, method 1) keeps ids made in the
    same millisecond by this process in creation order; it starts at a random value below 2048
    each millisecond so it rarely needs to borrow the next one.
    """
    global _last_millis, _counter
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis > _last_millis:
            _last_millis, _counter = millis, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_millis, _counter = _last_millis + 1, 0
        millis, counter = _last_millis, _counter
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64  # rand_a used as a counter
    value |= 0b10 << 62  # RFC 9562 variant
    value |= int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return uuid.UUID(int=value)
