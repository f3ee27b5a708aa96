"""The persistence scenarios of scripts/bench.py (issue 14): edgemq with its store against edgemq
without it, in the same run.

Each variant is an ``edgemq`` process configured through the environment
(``EDGEMQ_PERSISTENCE__ENABLE``, ``__PATH``, ``__SYNC``): ``memory`` has persistence off, ``always``,
``batched`` and ``off`` name the store's ``sync``. Every process gets a fresh store file in a
temporary directory of its own. Variants alternate (A/B, B/A, ...) and medians are compared
with ``memory``'s, so the machine's noise hits all of them alike.

  qos1_persistent  1 publisher -> 1 subscriber with clean session 0 (in every variant), QoS 1
  fanin_persistent, fanout_persistent   the QoS 0 fan-in and fan-out to clean session 0 subscribers
  startup_store    time to ready with a store prepared beforehand (retained messages, persistent
                   sessions with a subscription each, a few with queued messages) against an
                   edgemq without a store; the counts of the "restored from" line are checked
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_flows import Running, broker_process, flow

from broker.persistence.journal import Journal
from broker.persistence.store import Store

STORE_FILE = "edgemq.db"
RESTORED = re.compile(r"restored from \S+: (\d+) sessions, (\d+) queued messages, (\d+) retained messages")


def persistence_env(variant: str, folder: Path) -> dict[str, str]:
    """The environment that configures ``variant``'s persistence, its store in ``folder``."""
    if variant == "memory":
        return {"EDGEMQ_PERSISTENCE__ENABLE": "false"}
    return {
        "EDGEMQ_PERSISTENCE__ENABLE": "true",
        "EDGEMQ_PERSISTENCE__PATH": str(folder / STORE_FILE),
        "EDGEMQ_PERSISTENCE__SYNC": variant,
    }


@contextlib.contextmanager
def edgemq_variant(variant: str, prepared: Path | None = None, timeout: float = 60.0) -> Iterator[tuple[Running, Path]]:
    """An edgemq process of ``variant`` with a fresh store (a copy of ``prepared`` if given) and
    the path of its log."""
    with tempfile.TemporaryDirectory(prefix="edgemq-bench-") as tmp:
        folder = Path(tmp)
        if prepared is not None:
            shutil.copyfile(prepared, folder / STORE_FILE)
        log = folder / "edgemq.log"
        with broker_process("edgemq", env=persistence_env(variant, folder), log=log, timeout=timeout) as running:
            yield running, log


def store_commits(running: Running, variant: str) -> int:
    """The store's commits so far (req 2's ``store`` object); checks that the store is there
    exactly when ``variant`` persists and that no write failed."""
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:public").decode()}
    connection = http.client.HTTPConnection("127.0.0.1", running.http_port, timeout=30)
    try:
        connection.request("POST", "/api/v1", body=b'{"req":2,"seq":1}', headers=auth)
        answer = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    figures = answer.get("data", answer)
    store = figures.get("store")
    if (store is None) != (variant == "memory"):
        raise RuntimeError(f"variant {variant}: req 2 answered {answer}")
    if store is None:
        return 0
    if store["write_errors"]:
        raise RuntimeError(f"variant {variant}: the store failed writes: {store}")
    return int(store["commits"])


def _measure_store_variant(name: str, measure: Callable[[Running], dict[str, Any]]) -> dict[str, Any]:
    """``measure`` on a fresh edgemq of persistence variant ``name``, with its store's commits."""
    with edgemq_variant(name) as (running, _):
        return {**measure(running), "store_commits": store_commits(running, name)}


def compare_variants(
    scenario: str,
    variants: Sequence[str],
    repeat: int,
    measure: Callable[[Running], dict[str, Any]],
    launch: Callable[[str], contextlib.AbstractContextManager[Running]] | None = None,
    measures: dict[str, Callable[[Running], dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """``measure`` on each variant, alternating their order; every variant's medians beside the
    first one's (the baseline) as ratios. Variants are persistence variants (with the store's
    commits, 0 without a store) unless ``launch`` starts the broker of a variant name;
    ``measures`` gives a variant its own measure (the clients differ, not the broker)."""
    values: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for round_number in range(repeat):
        for name in variants if round_number % 2 == 0 else list(reversed(variants)):
            if launch is None:
                values[name].append(_measure_store_variant(name, measure))
            else:
                with launch(name) as running:
                    values[name].append((measures or {}).get(name, measure)(running))
    base = variants[0]
    rows = []
    for metric in values[base][0]:
        baseline = statistics.median(v[metric] for v in values[base])
        for name in variants[1:]:
            value = statistics.median(v[metric] for v in values[name])
            rows.append({"scenario": scenario, "metric": f"{name} {metric}", "value": value, "baseline": baseline,
                         "ratio": round(value / baseline, 2) if baseline else None, "runs": repeat})  # fmt: skip
    return rows


def qos1_persistent(repeat: int, messages: int) -> list[dict[str, Any]]:
    """The qos1 scenario to a clean session 0 subscriber: memory vs sync always, batched, off."""
    return compare_variants("qos1_persistent", ("memory", "always", "batched", "off"), repeat,
                            lambda r: flow(r, 1, messages, 1, qos=1, idle=10, clean=False))  # fmt: skip


def fanin_persistent(repeat: int, per_publisher: int) -> list[dict[str, Any]]:
    """The fanin scenario (QoS 0) to a clean session 0 subscriber: memory vs always."""
    return compare_variants("fanin_persistent", ("memory", "always"), repeat,
                            lambda r: flow(r, 4, per_publisher, 1, clean=False))  # fmt: skip


def fanout_persistent(repeat: int, messages: int) -> list[dict[str, Any]]:
    """The fanout scenario (QoS 0) to 50 clean session 0 subscribers: memory vs always."""
    return compare_variants("fanout_persistent", ("memory", "always"), repeat,
                            lambda r: flow(r, 1, messages, 50, clean=False))  # fmt: skip


@dataclass(frozen=True)
class StoreContents:
    """What startup_store prepares."""

    retained: int
    sessions: int
    queued_sessions: int
    """Sessions (the first ones) with queued messages ..."""
    queued_each: int
    """... and how many each."""

    @property
    def queued(self) -> int:
        return self.queued_sessions * self.queued_each


FULL_STORE = StoreContents(retained=100_000, sessions=10_000, queued_sessions=100, queued_each=10)
SMOKE_STORE = StoreContents(retained=1_000, sessions=100, queued_sessions=3, queued_each=10)


def prepare_store(path: Path, contents: StoreContents) -> None:
    """Write ``contents`` into a new store at ``path`` through edgemq's own Store and Journal
    (the schema of broker/persistence/store.py), in one transaction."""

    async def fill(journal: Journal) -> None:
        payload = b"x" * 64
        scope = journal.begin()  # everything in one batch
        for n in range(contents.retained):
            journal.retain(f"retained/{n // 1000}/{n}", payload, 1)
        for n in range(contents.sessions):
            client_id = f"persistent-{n:05d}"
            journal.session_saved(client_id, None, 4)
            journal.subscribed(client_id, [(f"devices/{n}/#", 1)])
            if n < contents.queued_sessions:
                for m in range(contents.queued_each):
                    journal.queued(client_id, journal.next_seq(), f"devices/{n}/{m}", payload, 1)
        committed = journal.end(scope)
        if committed is not None:
            await committed

    store = Store.open(path, sync="off")
    try:
        asyncio.run(fill(Journal(store)))
    finally:
        store.close()


def restored_counts(log: Path, timeout: float = 10.0) -> tuple[int, int, int]:
    """(sessions, queued messages, retained messages) of the "restored from" line in ``log``
    (the line is logged before the listeners open; the log thread may write it a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        found = RESTORED.search(log.read_text())
        if found is not None:
            sessions, queued, retained = map(int, found.groups())
            return sessions, queued, retained
        if time.monotonic() > deadline:
            raise RuntimeError(f"no 'restored from' line in the log:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


def startup_store(contents: StoreContents, repeat: int) -> list[dict[str, Any]]:
    """Seconds from process start until MQTT and the admin API accept, with the prepared store
    (sync always) against persistence off, alternating; the store's restored counts are checked."""
    with tempfile.TemporaryDirectory(prefix="edgemq-bench-store-") as tmp:
        prepared = Path(tmp) / STORE_FILE
        started = time.perf_counter()
        prepare_store(prepared, contents)
        prepare_s = time.perf_counter() - started
        samples: dict[str, list[float]] = {"memory": [], "always": []}
        restored: tuple[int, int, int] = (0, 0, 0)
        for round_number in range(repeat):
            for name in ("memory", "always") if round_number % 2 == 0 else ("always", "memory"):
                with edgemq_variant(name, prepared if name == "always" else None) as (running, log):
                    samples[name].append(running.ready_s)
                    if name == "always":
                        restored = restored_counts(log)
        expected = (contents.sessions, contents.queued, contents.retained)
        if restored != expected:
            raise RuntimeError(f"restored (sessions, queued, retained) {restored}, prepared {expected}")
        store_mb = prepared.stat().st_size / 1e6
    ready, baseline = statistics.median(samples["always"]), statistics.median(samples["memory"])
    info = {"prepare_s": round(prepare_s, 2), "store_mb": round(store_mb, 1), "restored_sessions": restored[0],
            "restored_queued": restored[1], "restored_retained": restored[2]}  # fmt: skip
    return [
        {"scenario": "startup_store", "metric": "always ready_s", "value": round(ready, 3),
         "baseline": round(baseline, 3), "ratio": round(ready / baseline, 2), "runs": repeat},
        *({"scenario": "startup_store", "metric": k, "value": v, "baseline": None, "ratio": None, "runs": 1}
          for k, v in info.items()),
    ]  # fmt: skip
