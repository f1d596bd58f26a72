"""Training runs: the lineage row behind every vector (who, what data, which options, how it ended).

A run is recorded as `running` before work starts so that a crash stays visible; an import's
run is committed together with its vector, so a refused import leaves no trace.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from registry.db.models import BaseModel, TrainingRun, utcnow

if TYPE_CHECKING:
    from registry.core import Core

RUN_FIELDS = (
    "kind", "base_id", "vector_name", "plugin", "plugin_version", "dataset_digest", "dataset_size",
    "params", "seed", "sources", "library_versions", "status", "started_at",
)  # fmt: skip
LIBRARIES = ("registry", "numpy", "zarr", "torch", "transformers", "trl")


def library_versions() -> dict[str, str]:

    versions = {}
    for lib in LIBRARIES:
        with contextlib.suppress(md.PackageNotFoundError):
            versions[lib] = md.version("preference-registry" if lib == "registry" else lib)
    return versions


def new_run(kind: str, b: BaseModel, name: str, **fields: Any) -> TrainingRun:
    """An unsaved `running` row, stamped with this process so gc can tell a crash from work."""
    fields.setdefault("params", {})
    fields["sources"] = {
        **fields.get("sources", {}),
        "process": {"host": socket.gethostname(), "pid": os.getpid()},
    }
    return TrainingRun(
        kind=kind,
        base_id=b.id,
        vector_name=name,
        library_versions=library_versions(),
        status="running",
        started_at=utcnow(),
        **fields,
    )


def copy_run(run: TrainingRun) -> TrainingRun:
    """A fresh row with the same fields: a retried transaction must not reuse ORM objects."""
    return TrainingRun(**{c: getattr(run, c) for c in RUN_FIELDS})


def run_from_lineage(lineage: dict[str, Any], base_id: int, vector_name: str, origin: dict) -> TrainingRun:
    """A finished run rebuilt from another registry's lineage record (bundles)."""
    return TrainingRun(
        kind=lineage.get("kind") or "import",
        base_id=base_id,
        vector_name=vector_name,
        plugin=lineage.get("plugin"),
        plugin_version=lineage.get("plugin_version"),
        dataset_digest=lineage.get("dataset_digest"),
        dataset_size=lineage.get("dataset_size"),
        params=lineage.get("params") or {},
        seed=lineage.get("seed"),
        sources={**(lineage.get("sources") or {}), **origin},
        library_versions=lineage.get("library_versions") or {},
        status="succeeded",
        started_at=utcnow(),
        ended_at=utcnow(),
    )


HEARTBEAT_SECONDS = 60.0
STALE_AFTER_SECONDS = 10 * HEARTBEAT_SECONDS  # a running run silent this long is dead, any host
_beats: dict[int, threading.Event] = {}


def start_run(core: Core, kind: str, b: BaseModel, name: str, **fields: Any) -> TrainingRun:
    """Record a run as `running` now, so a crash or failure stays visible in the lineage.

    A daemon thread refreshes its heartbeat until `finish_run`, so `gc` on any host can tell
    a run whose machine died from one still working.
    """
    run = new_run(kind, b, name, **fields)
    run.heartbeat_at = utcnow()

    def write() -> TrainingRun:
        with core.Session.begin() as s:
            s.add(run)
        return run

    run = core.write(write)
    stop = _beats[run.id] = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception), core.Session.begin() as s:  # a missed beat only ages the run
                s.execute(update(TrainingRun).where(TrainingRun.id == run.id).values(heartbeat_at=utcnow()))

    threading.Thread(target=beat, name=f"heartbeat-{run.id}", daemon=True).start()
    return run


def stop_heartbeat(run_id: int | None) -> None:
    if (stop := _beats.pop(run_id, None)) is not None:
        stop.set()


def finish_run(core: Core, run: TrainingRun, status: str, error: str | None = None) -> None:
    stop_heartbeat(run.id)

    def write() -> None:
        with core.Session.begin() as s:
            r = s.get(TrainingRun, run.id)
            r.status, r.ended_at, r.error = status, utcnow(), error

    core.write(write)


def interrupted_runs(core: Core, stale_after: float = STALE_AFTER_SECONDS) -> list[TrainingRun]:
    """Runs still marked running whose process on this host no longer exists, or whose
    heartbeat (from any host) is older than `stale_after` seconds."""
    host = socket.gethostname()
    with core.Session() as s:
        running = list(s.scalars(select(TrainingRun).where(TrainingRun.status == "running")))
    dead = []
    now = utcnow()
    for run in running:
        beat = run.heartbeat_at or run.started_at
        if beat is not None and (now - beat).total_seconds() > stale_after:
            dead.append(run)
            continue
        proc = (run.sources or {}).get("process", {})
        if proc.get("host") != host or not proc.get("pid"):
            continue
        try:
            os.kill(proc["pid"], 0)
        except ProcessLookupError:
            dead.append(run)
        except PermissionError:  # alive, another user's
            continue
    return dead
