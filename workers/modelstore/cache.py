"""Pipelines kept loaded between tasks on one GPU worker.

Loading a video model takes tens of seconds, so a worker keeps what it loaded and
evicts the least recently used pipeline only when the next one would not fit on
the card. The cache measures free memory itself (through `free_memory`) rather
than trusting its own bookkeeping, because other processes and fragmentation
change what is really free.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workers.modelstore.memory import (
    MemoryPlan,
    NoDeviceError,
    Policy,
    choose_policy,
    device_memory,
)

logger = logging.getLogger(__name__)

Loader = Callable[[MemoryPlan], object]


@dataclass
class Entry:
    key: str
    value: object
    need_bytes: int
    plan: MemoryPlan
    last_used: float
    uses: int
    # What it was loaded from (revision, loading params): another signature
    # asked for under the same key loads it again.
    signature: str = ""


def _free_gpu_memory() -> int | None:
    info = device_memory()
    return info[0] if info is not None else None


def _move_to_cpu(value: object) -> None:
    to: Any = getattr(value, "to", None)
    if callable(to):
        try:
            to("cpu")
        except Exception:
            # Offloaded pipelines may refuse to move; dropping the last reference
            # frees them all the same.
            logger.debug("could not move an evicted model to the CPU", exc_info=True)


def _return_freed_memory() -> None:
    # Reference cycles inside pipelines keep tensors alive until a collection,
    # and PyTorch's caching allocator keeps freed blocks until emptied; both must
    # go before free memory is measured again.
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelCache:
    """Pipelines kept loaded between tasks on one GPU worker, least recently used
    evicted first when free memory is short.

    Thread-safe with one lock, held across a load: measuring free memory, evicting
    and loading must happen as one step, or two loads would both count the same
    free bytes. So two threads asking for the same key load it once, and a hit
    waits while another key loads (a GPU worker runs one task at a time anyway).
    """

    def __init__(
        self,
        *,
        free_memory: Callable[[], int | None] = _free_gpu_memory,
        release: Callable[[object], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int | None = None,
    ) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._free_memory = free_memory
        # None: move the value to the CPU, then collect garbage and empty the
        # CUDA cache after the cache's own references are gone (inside a release
        # callable the argument itself would still keep the model alive).
        self._release = release
        self._clock = clock
        self.max_entries = max_entries
        # Insertion order is recency order (hits move to the end), so ties in a
        # coarse clock cannot make the eviction order ambiguous.
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._pins: dict[str, int] = {}  # key -> blocks using it now
        self._use = threading.RLock()  # held by a ``using`` block
        self.evictions: list[str] = []

    def get(
        self,
        key: str,
        load: Loader,
        *,
        need_bytes: int,
        cpu_allowed: bool = True,
        signature: str = "",
    ) -> object:
        """The value cached under `key`, loading it with `load(plan)` on a miss.

        On a miss, least recently used entries are evicted while the model would
        not fit wholly on the GPU; then the plan is chosen from what is free.
        With `cpu_allowed=False` and no fit even on an emptied card this raises
        NoDeviceError, and the evictions it made stay made; a hit that was
        loaded on the CPU is loaded again for such a caller."""
        with self._lock:
            entry = self._entries.get(key)
            stale = entry is not None and (
                # Loaded on the CPU for a caller that allowed it (a preload on
                # a busy card); this caller needs the GPU, so place it again.
                (entry.plan.policy is Policy.CPU and not cpu_allowed)
                # Pulled again or loaded with other params since.
                or entry.signature != signature
            )
            if stale:
                if self._pins.get(key):
                    raise RuntimeError(
                        f"the model {key} is in use as it was loaded; ask again"
                        " once that task is done"
                    )
                self._drop(key)
                entry = None
            if entry is not None:
                entry.uses += 1
                entry.last_used = self._clock()
                self._entries.move_to_end(key)
                return entry.value
            if self.max_entries is not None:
                while len(self._entries) >= self.max_entries and self._evict_lru():
                    pass
            while not self._fits_on_gpu(need_bytes) and self._evict_lru():
                pass
            plan = choose_policy(
                need_bytes, self._free_memory(), cpu_allowed=cpu_allowed
            )
            logger.info("loading %s: %s", key, plan.reason)
            value = load(plan)
            self._entries[key] = Entry(
                key=key,
                value=value,
                need_bytes=need_bytes,
                plan=plan,
                last_used=self._clock(),
                uses=1,
                signature=signature,
            )
            return value

    def _fits_on_gpu(self, need_bytes: int) -> bool:
        free = self._free_memory()
        if free is None:
            # No GPU: evicting frees nothing a CPU model is short of.
            return True
        try:
            plan = choose_policy(need_bytes, free, cpu_allowed=False)
        except NoDeviceError:
            return False
        return plan.policy is Policy.GPU

    def _evict_lru(self) -> bool:
        """Evict the least recently used entry no task is using; False when
        there is none."""
        for key in self._entries:
            if not self._pins.get(key):
                self._drop(key)
                return True
        return False

    @contextmanager
    def using(
        self,
        key: str,
        load: Loader,
        *,
        need_bytes: int,
        cpu_allowed: bool = True,
        signature: str = "",
    ) -> Iterator[object]:
        """``get``, with the entry kept loaded until the block ends: a task
        using two models cannot have the first evicted to make room for the
        second. One block at a time uses the cache's models (a block may
        nest another): a pipeline keeps the state of its call (its
        scheduler's steps), so two threads running it at once would corrupt
        each other, and a GPU worker runs one task at a time anyway. One lock
        for all keys, so two threads nesting models in opposite orders cannot
        deadlock."""
        with self._use:
            with self._lock:
                value = self.get(
                    key, load, need_bytes=need_bytes, cpu_allowed=cpu_allowed,
                    signature=signature,
                )  # fmt: skip
                self._pins[key] = self._pins.get(key, 0) + 1
            try:
                yield value
            finally:
                with self._lock:
                    self._pins[key] -= 1
                    if not self._pins[key]:
                        del self._pins[key]

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.evictions.append(key)
        logger.info(
            "evicting %s (%s, used %d times)", key, entry.plan.policy.value, entry.uses
        )
        value = entry.value
        del entry
        try:
            if self._release is not None:
                self._release(value)
            else:
                _move_to_cpu(value)
        except Exception:
            # The entry is gone either way, and free memory is measured again
            # next, so a failed release shows up as memory still in use.
            logger.exception("releasing evicted model %s failed", key)
        del value
        if self._release is None:
            _return_freed_memory()

    def evict(self, key: str) -> bool:
        """Drop `key` if loaded and no task is using it; True when it was."""
        with self._lock:
            if key not in self._entries or self._pins.get(key):
                return False
            self._drop(key)
            return True

    def clear(self) -> None:
        """Evict everything no task is using, least recently used first
        (recorded in evictions)."""
        with self._lock:
            while self._evict_lru():
                pass

    def loaded(self) -> list[dict[str, object]]:
        """What is loaded, most recently used first, for logs and the heartbeat."""
        with self._lock:
            return [
                {
                    "key": e.key,
                    "need_bytes": e.need_bytes,
                    "policy": e.plan.policy.value,
                    "uses": e.uses,
                    "last_used": e.last_used,
                }
                for e in reversed(self._entries.values())
            ]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def preload(self, items: Sequence[tuple[str, Loader, int]]) -> list[str]:
        """Load models at worker start, in order; the keys that loaded. A model
        that fails to load is logged and skipped: the worker still serves the
        others, and a task that needs the failed one will report why."""
        done: list[str] = []
        for key, load, need_bytes in items:
            try:
                self.get(key, load, need_bytes=need_bytes)
            except Exception:
                logger.exception("preloading %s failed; skipping it", key)
                continue
            done.append(key)
        return done
