"""The collector stays off while a config is built, and comes back exactly as it was."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator

import pytest

from probed.runtime import collector


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()


def test_paused_disables_collection_and_restores_it_even_when_nested() -> None:
    gc.enable()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_a_pause_in_another_thread_ends_only_when_the_last_one_does() -> None:
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def parse_in_a_thread() -> None:
        with collector.paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=parse_in_a_thread)
    worker.start()
    assert inside.wait(5)
    with collector.paused():
        pass
    assert not gc.isenabled()  # the thread's pause is still open
    release.set()
    worker.join(5)
    assert gc.isenabled()


def test_settle_freezes_the_survivors_and_sweeps_young_garbage_less_often() -> None:
    kept = [[i] for i in range(1000)]  # long-lived containers, as a config's are
    collector.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == collector.GEN0_THRESHOLD
    assert gc.isenabled()


def test_the_frozen_count_is_taken_once_when_settling_not_walked_at_every_scrape() -> None:
    kept = [[i] for i in range(1000)]
    collector.settle()
    frozen = collector.frozen_objects()
    assert frozen >= len(kept)
    more = [[i] for i in range(1000)]
    gc.freeze()  # frozen by someone else: the figure stays the settle's until the next one
    assert collector.frozen_objects() == frozen
    collector.settle()
    assert collector.frozen_objects() >= frozen + len(more)
    gc.unfreeze()


def test_after_settling_the_collector_never_starts_a_full_collection_by_itself() -> None:
    collector.settle()
    assert gc.get_threshold()[2] >= 1 << 30
    full = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(count)
    try:
        for _ in range(300):  # ~3,000 young collections' worth of surviving containers
            _ = [[i] for i in range(5000)]
    finally:
        gc.callbacks.remove(count)
    assert full == []


async def test_the_sweeper_runs_full_collections_on_its_timer_but_not_while_paused() -> None:
    collected: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            collected.append(1)

    gc.callbacks.append(count)
    sweeper = asyncio.create_task(collector.sweep(every_s=0.01))
    try:
        with collector.paused():
            await asyncio.sleep(0.1)
            assert collected == []
        for _ in range(500):  # bounded: at most 5 s
            if collected:
                break
            await asyncio.sleep(0.01)
        assert collected
    finally:
        sweeper.cancel()
        gc.callbacks.remove(count)
