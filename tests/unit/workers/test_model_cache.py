"""The GPU worker's model cache and memory policy, against a simulated card.

`FakeCard` stands in for VRAM: loads allocate what their plan keeps on the GPU,
releases free it, and the cache measures free memory from it as it would from
`torch.cuda.mem_get_info`. No torch, no GPU needed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from workers.modelstore.cache import ModelCache
from workers.modelstore.memory import (
    GiB,
    MemoryPlan,
    NoDeviceError,
    Policy,
    apply_plan,
    choose_policy,
    device_memory,
)

ON_GPU_SHARE = {
    Policy.GPU: 1.0,
    Policy.MODEL_OFFLOAD: 0.35,
    Policy.SEQUENTIAL_OFFLOAD: 0.12,
    Policy.CPU: 0.0,
}


@dataclass
class FakeModel:
    key: str
    plan: MemoryPlan


@dataclass
class FakeCard:
    total: int
    allocations: dict[str, int] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)

    def free(self) -> int:
        return self.total - sum(self.allocations.values())

    def loader(self, key: str, need: int) -> Callable[[MemoryPlan], FakeModel]:
        def load(plan: MemoryPlan) -> FakeModel:
            self.loads.append(key)
            self.allocations[key] = int(need * ON_GPU_SHARE[plan.policy])
            assert self.free() >= 0, f"{key} overflowed the card"
            return FakeModel(key, plan)

        return load

    def release(self, value: object) -> None:
        assert isinstance(value, FakeModel)
        del self.allocations[value.key]

    def cache(self, **kwargs: Any) -> ModelCache:
        return ModelCache(free_memory=self.free, release=self.release, **kwargs)

    def get(self, cache: ModelCache, key: str, gib: float, **kwargs: bool) -> object:
        need = int(gib * GiB)
        return cache.get(key, self.loader(key, need), need_bytes=need, **kwargs)


class TickingClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


# --- the cache ---------------------------------------------------------------


def test_it_evicts_least_recently_used_first_and_keeps_a_touched_model() -> None:
    card = FakeCard(total=10 * GiB)
    cache = card.cache()
    for key in "ABC":
        card.get(cache, key, 3)
    card.get(cache, "A", 3)  # touch A: B is now the least recently used

    card.get(cache, "D", 4)

    assert cache.evictions == ["B", "C"]
    assert "A" in cache and "D" in cache
    assert "B" not in cache and "C" not in cache
    assert cache.loaded()[0]["policy"] == "gpu"


def test_a_model_that_fits_evicts_nothing() -> None:
    card = FakeCard(total=24 * GiB)
    cache = card.cache()
    card.get(cache, "A", 4)
    card.get(cache, "B", 4)

    card.get(cache, "C", 8)

    assert cache.evictions == []
    assert [e["key"] for e in cache.loaded()] == ["C", "B", "A"]


def test_a_model_bigger_than_the_card_evicts_all_then_offloads() -> None:
    card = FakeCard(total=8 * GiB)
    cache = card.cache()
    card.get(cache, "A", 3)
    card.get(cache, "B", 3)

    model = card.get(cache, "huge", 16)

    assert cache.evictions == ["A", "B"]
    assert isinstance(model, FakeModel)
    assert model.plan.policy is Policy.MODEL_OFFLOAD
    assert model.plan.vae_tiling and model.plan.vae_slicing
    [entry] = cache.loaded()
    assert (entry["key"], entry["need_bytes"], entry["policy"]) == (
        "huge",
        16 * GiB,
        "model_cpu_offload",
    )
    assert card.allocations == {"huge": int(16 * GiB * 0.35)}


def test_gpu_only_model_that_cannot_fit_raises_after_trying_evictions() -> None:
    # Decided: the cache cannot know a model will not fit on an emptied card
    # until it has emptied it, so the evictions it tried stay made (and are
    # recorded); the model is not loaded and nothing is stored for it.
    card = FakeCard(total=8 * GiB)
    cache = card.cache()
    card.get(cache, "A", 3)

    with pytest.raises(NoDeviceError, match=r"100\.0 GiB.*8\.0 GiB is free"):
        card.get(cache, "giant", 100, cpu_allowed=False)

    assert cache.evictions == ["A"]
    assert "giant" not in cache
    assert cache.loaded() == []
    assert card.loads == ["A"]


def test_a_model_too_big_even_to_offload_runs_on_the_cpu_when_allowed() -> None:
    card = FakeCard(total=8 * GiB)
    cache = card.cache()

    model = card.get(cache, "giant", 100)

    assert isinstance(model, FakeModel)
    assert model.plan.policy is Policy.CPU
    assert card.allocations == {"giant": 0}


def test_a_model_loaded_on_the_cpu_is_placed_again_for_a_gpu_only_caller() -> None:
    card = FakeCard(total=8 * GiB)
    cache = card.cache()
    card.allocations["other process"] = int(7.9 * GiB)  # too busy even to offload
    cpu_model = card.get(cache, "A", 4)
    del card.allocations["other process"]

    gpu_model = card.get(cache, "A", 4, cpu_allowed=False)

    assert isinstance(cpu_model, FakeModel) and isinstance(gpu_model, FakeModel)
    assert (cpu_model.plan.policy, gpu_model.plan.policy) == (Policy.CPU, Policy.GPU)
    assert card.loads == ["A", "A"]
    assert cache.evictions == ["A"]


def test_without_a_gpu_everything_loads_on_the_cpu_and_nothing_is_evicted() -> None:
    plans: list[MemoryPlan] = []
    cache = ModelCache(free_memory=lambda: None, release=lambda v: None)
    for key in "AB":
        cache.get(key, lambda plan: plans.append(plan), need_bytes=GiB)

    assert len(plans) == 2
    assert cache.evictions == []
    assert [e["policy"] for e in cache.loaded()] == ["cpu", "cpu"]
    with pytest.raises(NoDeviceError, match="needs a GPU"):
        cache.get("C", lambda plan: plan, need_bytes=GiB, cpu_allowed=False)


def test_a_failing_load_stores_nothing_and_is_retried_next_time() -> None:
    card = FakeCard(total=10 * GiB)
    cache = card.cache()
    card.get(cache, "A", 2)

    def broken(plan: MemoryPlan) -> object:
        raise OSError("weights are corrupt")

    with pytest.raises(OSError, match="corrupt"):
        cache.get("B", broken, need_bytes=GiB)

    assert "B" not in cache
    assert [e["key"] for e in cache.loaded()] == ["A"]
    card.get(cache, "B", 1)
    assert "B" in cache


def test_hits_return_the_loaded_value_without_loading_again() -> None:
    card = FakeCard(total=10 * GiB)
    cache = card.cache()

    first = card.get(cache, "A", 2)
    second = card.get(cache, "A", 2)
    third = card.get(cache, "A", 2)

    assert first is second is third
    assert card.loads == ["A"]
    assert cache.loaded()[0]["uses"] == 3


def test_max_entries_evicts_the_least_recently_used_beyond_the_count() -> None:
    card = FakeCard(total=100 * GiB)
    cache = card.cache(max_entries=2)
    card.get(cache, "A", 1)
    card.get(cache, "B", 1)
    card.get(cache, "A", 1)

    card.get(cache, "C", 1)

    assert cache.evictions == ["B"]
    assert [e["key"] for e in cache.loaded()] == ["C", "A"]
    with pytest.raises(ValueError, match="max_entries"):
        ModelCache(max_entries=0)


def test_two_threads_asking_for_the_same_key_load_it_once() -> None:
    cache = ModelCache(free_memory=lambda: 10 * GiB, release=lambda v: None)
    started, gate = threading.Event(), threading.Event()
    calls: list[int] = []
    results: list[object] = []

    def slow_load(plan: MemoryPlan) -> object:
        calls.append(1)
        started.set()
        gate.wait(5)
        return object()

    def worker() -> None:
        results.append(cache.get("video", slow_load, need_bytes=GiB))

    first, second = threading.Thread(target=worker), threading.Thread(target=worker)
    first.start()
    assert started.wait(5)
    second.start()
    time.sleep(0.05)  # let the second thread reach the lock while the load runs
    gate.set()
    first.join(5)
    second.join(5)

    assert len(calls) == 1
    assert len(results) == 2 and results[0] is results[1]


def test_a_model_asked_for_with_another_signature_is_loaded_again() -> None:
    """A new pull or an admin edit of how the model loads (its signature)
    replaces the loaded copy; the same signature is a hit."""
    card = FakeCard(total=10 * GiB)
    cache = card.cache()
    need = 2 * GiB

    first = cache.get("A", card.loader("A", need), need_bytes=need, signature="r1")
    same = cache.get("A", card.loader("A", need), need_bytes=need, signature="r1")
    pulled = cache.get("A", card.loader("A", need), need_bytes=need, signature="r2")

    assert first is same and pulled is not first
    assert card.loads == ["A", "A"]
    assert cache.evictions == ["A"]
    assert card.allocations == {"A": need}  # the stale copy was released


def test_one_block_at_a_time_uses_the_models() -> None:
    """A pipeline keeps the state of its call, so threads using models take
    turns; a block may nest another model, and two threads nesting two
    models in opposite orders both finish."""
    cache = ModelCache(free_memory=lambda: 10 * GiB, release=lambda v: None)
    inside: list[str] = []
    overlaps: list[int] = []
    lock = threading.Lock()

    def use(first: str, second: str) -> None:
        with cache.using(first, lambda plan: object(), need_bytes=GiB):
            with lock:
                inside.append(first)
                overlaps.append(len(inside))
            time.sleep(0.05)
            with cache.using(second, lambda plan: object(), need_bytes=GiB):
                time.sleep(0.05)
            with lock:
                inside.remove(first)

    threads = [
        threading.Thread(target=use, args=pair)
        for pair in (("A", "B"), ("B", "A"), ("A", "B"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert not any(thread.is_alive() for thread in threads)
    assert overlaps == [1, 1, 1]


def test_a_model_in_use_is_neither_cleared_nor_reloaded_under_it() -> None:
    card = FakeCard(total=10 * GiB)
    cache = card.cache()
    need = GiB
    with cache.using("A", card.loader("A", need), need_bytes=need, signature="r1"):
        card.get(cache, "B", 1)
        cache.clear()
        assert not cache.evict("A")
        with pytest.raises(RuntimeError, match="in use"):
            cache.get("A", card.loader("A", need), need_bytes=need, signature="r2")
        assert [e["key"] for e in cache.loaded()] == ["A"]
    cache.clear()
    assert cache.loaded() == [] and card.allocations == {}


def test_loaded_lists_most_recent_first_with_heartbeat_fields() -> None:
    card = FakeCard(total=20 * GiB)
    clock = TickingClock()
    cache = card.cache(clock=clock)
    card.get(cache, "A", 1)  # t=101
    card.get(cache, "B", 2)  # t=102
    card.get(cache, "C", 3)  # t=103
    card.get(cache, "A", 1)  # hit, t=104

    assert cache.loaded() == [
        {"key": "A", "need_bytes": GiB, "policy": "gpu", "uses": 2, "last_used": 104.0},
        {
            "key": "C",
            "need_bytes": 3 * GiB,
            "policy": "gpu",
            "uses": 1,
            "last_used": 103.0,
        },
        {
            "key": "B",
            "need_bytes": 2 * GiB,
            "policy": "gpu",
            "uses": 1,
            "last_used": 102.0,
        },
    ]
    assert len(cache) == 3


def test_evict_and_clear_release_values_and_record_them() -> None:
    card = FakeCard(total=20 * GiB)
    cache = card.cache()
    for key in "ABC":
        card.get(cache, key, 1)

    assert cache.evict("B") is True
    assert cache.evict("B") is False
    cache.clear()

    assert cache.evictions == ["B", "A", "C"]
    assert card.allocations == {}
    assert cache.loaded() == []


def test_a_failing_release_is_logged_and_the_entry_still_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_release(value: object) -> None:
        raise RuntimeError("driver hiccup")

    cache = ModelCache(free_memory=lambda: 10 * GiB, release=bad_release)
    cache.get("A", lambda plan: object(), need_bytes=GiB)

    with caplog.at_level(logging.ERROR):
        assert cache.evict("A")

    assert "A" not in cache
    assert "releasing evicted model A failed" in caplog.text


def test_default_release_moves_the_evicted_model_to_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a worker without torch

    class Pipeline:
        def __init__(self, fails: bool = False) -> None:
            self.moves: list[str] = []
            self.fails = fails

        def to(self, device: str) -> Pipeline:
            if self.fails:
                raise RuntimeError("offloaded pipelines cannot be moved")
            self.moves.append(device)
            return self

    movable, stuck = Pipeline(), Pipeline(fails=True)
    cache = ModelCache(free_memory=lambda: 10 * GiB)
    cache.get("movable", lambda plan: movable, need_bytes=GiB)
    cache.get("stuck", lambda plan: stuck, need_bytes=GiB)
    cache.get("plain", lambda plan: 42, need_bytes=GiB)

    cache.clear()

    assert movable.moves == ["cpu"]
    assert cache.evictions == ["movable", "stuck", "plain"]


def test_the_default_free_memory_works_without_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    cache = ModelCache()

    plan = cache.get("A", lambda plan: plan, need_bytes=GiB)

    assert isinstance(plan, MemoryPlan) and plan.policy is Policy.CPU


def test_preload_skips_a_failing_model_and_loads_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    card = FakeCard(total=20 * GiB)
    cache = card.cache()

    def broken(plan: MemoryPlan) -> object:
        raise FileNotFoundError("run manage.py models pull B")

    with caplog.at_level(logging.ERROR):
        done = cache.preload(
            [
                ("A", card.loader("A", GiB), GiB),
                ("B", broken, GiB),
                ("C", card.loader("C", 2 * GiB), 2 * GiB),
            ]
        )

    assert done == ["A", "C"]
    assert "B" not in cache
    assert "preloading B failed" in caplog.text


# --- choose_policy -----------------------------------------------------------


@pytest.mark.parametrize(
    ("need", "free", "kwargs", "policy", "tiling", "slicing"),
    [
        pytest.param(4, None, {}, Policy.CPU, False, False, id="no-gpu"),
        pytest.param(4, 10, {}, Policy.GPU, False, False, id="fits-roomy"),
        pytest.param(8, 10, {}, Policy.GPU, False, True, id="fits-tight-slices"),
        pytest.param(9, 10, {}, Policy.GPU, False, True, id="fits-at-headroom"),
        pytest.param(9.5, 10, {}, Policy.MODEL_OFFLOAD, True, True, id="headroom"),
        pytest.param(9.5, 10, {"headroom": 0.0}, Policy.GPU, False, True, id="no-hr"),
        pytest.param(20, 10, {}, Policy.MODEL_OFFLOAD, True, True, id="offload"),
        pytest.param(60, 10, {}, Policy.SEQUENTIAL_OFFLOAD, True, True, id="seq"),
        pytest.param(
            60, 10, {"offload_factor": 0.1}, Policy.MODEL_OFFLOAD, True, True, id="f"
        ),
        pytest.param(100, 10, {}, Policy.CPU, False, False, id="cpu-fallback"),
    ],
)
def test_choose_policy_picks_the_cheapest_placement(
    need: float,
    free: float | None,
    kwargs: dict[str, Any],
    policy: Policy,
    tiling: bool,
    slicing: bool,
) -> None:
    free_bytes = None if free is None else int(free * GiB)

    plan = choose_policy(int(need * GiB), free_bytes, **kwargs)

    assert (plan.policy, plan.vae_tiling, plan.vae_slicing) == (
        policy,
        tiling,
        slicing,
    )
    assert plan.reason


def test_choose_policy_reasons_name_the_numbers() -> None:
    assert "4.0 GiB of 10.0 GiB free" in choose_policy(4 * GiB, 10 * GiB).reason
    assert "model CPU offload" in choose_policy(20 * GiB, 10 * GiB).reason
    assert "sequential" in choose_policy(60 * GiB, 10 * GiB).reason
    assert "CPU" in choose_policy(100 * GiB, 10 * GiB).reason


@pytest.mark.parametrize(
    ("free", "message"),
    [
        (None, "this model needs a GPU; this worker has none"),
        (10 * GiB, r"needs 100\.0 GiB .* only 10\.0 GiB is free"),
    ],
)
def test_choose_policy_without_cpu_raises_no_device(
    free: int | None, message: str
) -> None:
    with pytest.raises(NoDeviceError, match=message):
        choose_policy(100 * GiB, free, cpu_allowed=False)


def test_choose_policy_without_cpu_still_offloads_when_it_can() -> None:
    plan = choose_policy(20 * GiB, 10 * GiB, cpu_allowed=False)
    assert plan.policy is Policy.MODEL_OFFLOAD


def test_choose_policy_rejects_a_negative_need() -> None:
    with pytest.raises(ValueError, match="negative"):
        choose_policy(-1, GiB)


# --- apply_plan and device_memory ----------------------------------------------


class RecordingPipeline:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []

    def _record(self, name: str) -> Callable[..., RecordingPipeline]:
        def method(*args: object, **kwargs: object) -> RecordingPipeline:
            self.calls.append((name, args, kwargs))
            return self

        return method

    def __getattr__(self, name: str) -> Callable[..., RecordingPipeline]:
        if name in {
            "to",
            "enable_model_cpu_offload",
            "enable_sequential_cpu_offload",
            "enable_vae_tiling",
            "enable_vae_slicing",
        }:
            return self._record(name)
        raise AttributeError(name)


class AudioPipeline:
    """A pipeline without a VAE: no tiling or slicing methods."""

    def __init__(self) -> None:
        self.devices: list[str] = []

    def to(self, device: str) -> AudioPipeline:
        self.devices.append(device)
        return self


def _plan(policy: Policy, tiling: bool, slicing: bool) -> MemoryPlan:
    return MemoryPlan(policy, tiling, slicing, "test")


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (_plan(Policy.GPU, False, False), [("to", ("cuda:1",), {})]),
        (
            _plan(Policy.GPU, False, True),
            [("to", ("cuda:1",), {}), ("enable_vae_slicing", (), {})],
        ),
        (
            _plan(Policy.MODEL_OFFLOAD, True, True),
            [
                ("enable_model_cpu_offload", (), {"device": "cuda:1"}),
                ("enable_vae_tiling", (), {}),
                ("enable_vae_slicing", (), {}),
            ],
        ),
        (
            _plan(Policy.SEQUENTIAL_OFFLOAD, True, False),
            [
                ("enable_sequential_cpu_offload", (), {"device": "cuda:1"}),
                ("enable_vae_tiling", (), {}),
            ],
        ),
        (_plan(Policy.CPU, False, False), [("to", ("cpu",), {})]),
    ],
    ids=["gpu", "gpu-slicing", "model-offload", "sequential", "cpu"],
)
def test_apply_plan_calls_the_pipeline_methods_the_plan_asks_for(
    plan: MemoryPlan, expected: list[tuple[str, tuple[object, ...], dict[str, object]]]
) -> None:
    pipeline = RecordingPipeline()

    assert apply_plan(pipeline, plan, device="cuda:1") is pipeline
    assert pipeline.calls == expected


def test_apply_plan_skips_vae_methods_a_pipeline_lacks() -> None:
    pipeline = AudioPipeline()

    assert apply_plan(pipeline, _plan(Policy.GPU, True, True)) is pipeline
    assert pipeline.devices == ["cuda"]


def test_device_memory_is_none_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert device_memory() is None


def _fake_torch(available: bool) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: available,
        mem_get_info=lambda device: (3 * GiB + device, 8 * GiB),
    )
    return torch


def test_device_memory_is_none_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(available=False))
    assert device_memory() is None


def test_device_memory_reads_free_and_total_from_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(available=True))
    assert device_memory(1) == (3 * GiB + 1, 8 * GiB)


def test_a_model_in_use_is_not_evicted_to_make_room_for_another() -> None:
    card = FakeCard(total=10 * GiB)
    cache = card.cache()
    card.get(cache, "spare", 3)
    need = 6 * GiB

    with cache.using("base", card.loader("base", need), need_bytes=need) as base:
        # The adapter needs more than is free: the idle model goes, the one
        # in use stays, and the adapter is offloaded rather than evicting it.
        card.get(cache, "adapter", 6)
        assert "base" in cache and "spare" not in cache
        assert base is not None

    assert cache.evictions == ["spare"]
    policies = {e["key"]: e["policy"] for e in cache.loaded()}
    assert policies == {"base": "gpu", "adapter": "model_cpu_offload"}
    # Once the block is over, the base model is evictable again.
    card.get(cache, "next", 9)
    assert "base" not in cache
