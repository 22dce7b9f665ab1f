"""Queues by capability: a task's queue from its model's GPU memory, and the
queues a worker of a given size serves."""

from __future__ import annotations

import os

import pytest
from django.core.management import CommandError, call_command

from media_jobs.queues import NoQueueForModel, queue_for_vram, queues_for_worker


@pytest.mark.parametrize(
    ("vram", "queue"),
    [(0, "cpu"), (4, "gpu-8"), (8, "gpu-8"), (8.5, "gpu-16"), (20, "gpu-24"),
     (40, "gpu-48")],
)  # fmt: skip
def test_a_model_goes_to_the_smallest_gpu_class_that_holds_it(vram, queue):
    assert queue_for_vram(vram) == queue


def test_a_model_bigger_than_every_gpu_class_is_refused():
    with pytest.raises(NoQueueForModel, match="80 GB"):
        queue_for_vram(80)


def test_a_worker_serves_every_class_up_to_its_memory():
    assert queues_for_worker(24) == ["gpu-24", "gpu-16", "gpu-8", "cpu", "io"]
    assert queues_for_worker(0) == ["cpu", "io"]
    assert queues_for_worker(16, cpu=False) == ["gpu-16", "gpu-8"]
    with pytest.raises(ValueError):
        queues_for_worker(4, cpu=False)


@pytest.mark.parametrize("vram", [8, 16, 24, 48])
def test_a_worker_polls_its_largest_gpu_class_first_and_the_cpu_last(vram, settings):
    """The Redis transport polls queues in the listed order: a big card takes
    the work only it can do before anything a smaller host could do."""
    queues = queues_for_worker(vram)
    gpu = [name for name in queues if name.startswith("gpu-")]
    sizes = [settings.STUDIO_GPU_QUEUES[name] for name in gpu]
    assert queues[0] == gpu[0] and sizes[0] == max(sizes) <= vram
    assert sizes == sorted(sizes, reverse=True)
    assert queues[len(gpu) :] == ["cpu", "io"]


def test_the_worker_command_prints_its_queues(capsys, monkeypatch):
    call_command("worker", "--vram", "24", "--print-queues")
    assert capsys.readouterr().out.strip() == "gpu-24,gpu-16,gpu-8,cpu,io"
    monkeypatch.setenv("STUDIO_WORKER_VRAM", "48")
    call_command("worker", "--gpu-only", "--print-queues")
    assert capsys.readouterr().out.strip() == "gpu-48,gpu-24,gpu-16,gpu-8"


def test_the_worker_command_rejects_a_bad_memory_size(monkeypatch):
    monkeypatch.setenv("STUDIO_WORKER_VRAM", "lots")
    with pytest.raises(CommandError, match="not a number"):
        call_command("worker", "--print-queues")
    with pytest.raises(CommandError, match="needs a GPU"):
        call_command("worker", "--gpu-only", "--vram", "4", "--print-queues")


def test_a_worker_is_pinned_to_its_card(monkeypatch, capsys):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    call_command("worker", "--vram", "24", "--gpu", "1", "--print-queues")

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(CommandError, match="needs --vram"):
        call_command("worker", "--gpu", "0", "--print-queues")
