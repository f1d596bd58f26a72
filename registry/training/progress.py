"""Progress of long work (DPO training, materialize, import): a bar on a terminal, plain or JSON lines in logs.

On a terminal, training shows one progress bar per half with the loss and the DPO reward
margin of the latest step. Elsewhere (CI, `nohup`, a batch job's log) it writes one line
every `every` steps, or a JSON object per line when the command runs with `--json`, and
keeps third-party bars ("Loading weights", "Tokenizing", "Writing model shards") out of
the log. Only the main process of a distributed launch reports.

The command line chooses the mode once with `reporting(...)`; library callers get the
defaults (bar on a terminal, a line every 10 steps otherwise).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class ProgressSettings:
    json: bool = False  # JSON lines instead of text lines when not on a terminal
    every: int = 10  # report every N optimizer steps when not on a terminal (first and last always)
    stream: IO[str] | None = None  # default: sys.stderr at the time of writing

    def out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def interactive(self) -> bool:
        out = self.out()
        return bool(getattr(out, "isatty", lambda: False)())


_SETTINGS: contextvars.ContextVar[ProgressSettings | None] = contextvars.ContextVar(
    "registry_progress", default=None
)


def settings() -> ProgressSettings:
    return _SETTINGS.get() or ProgressSettings()


@contextlib.contextmanager
def reporting(
    json: bool = False, every: int = 10, stream: IO[str] | None = None
) -> Iterator[ProgressSettings]:
    """Report progress this way inside the block (the CLI wraps each command in it)."""
    if every < 1:
        raise ValueError("every must be at least 1")
    token = _SETTINGS.set(ProgressSettings(json=json, every=every, stream=stream))
    try:
        yield settings()
    finally:
        _SETTINGS.reset(token)


@contextlib.contextmanager
def quiet_third_party(interactive: bool) -> Iterator[None]:
    """Silence other libraries' progress bars when not on a terminal; restore them after."""
    if interactive:  # on a terminal the bars stay
        yield
        return
    try:
        import datasets
        from transformers.utils import logging as hf_logging
    except ImportError:  # without the training extra there are no such bars (the verb says what is missing)
        yield
        return

    hf_was, ds_was = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers and huggingface_hub
    datasets.disable_progress_bars()
    tqdm_was = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # trl's reference log-prob and transformers' shard-writing bars
    try:
        yield
    finally:
        if tqdm_was is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_was
        if hf_was:
            hf_logging.enable_progress_bar()
        if ds_was:
            datasets.enable_progress_bars()


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def step_record(label: str, step: int, total: int, logs: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """One step's report: what the lines, the JSON and the bar all show."""
    rec: dict[str, Any] = {"event": "train_step", "label": label, "step": step, "total_steps": total}
    for key, name in (
        ("loss", "loss"),
        ("rewards/margins", "margin"),
        ("rewards/accuracies", "accuracy"),
        ("learning_rate", "learning_rate"),
        ("grad_norm", "grad_norm"),
        ("epoch", "epoch"),
    ):
        v = logs.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            rec[name] = float(v)
    rec["elapsed_s"] = round(elapsed, 3)
    per_step = elapsed / step if step else 0.0
    rec["eta_s"] = round(per_step * max(0, total - step), 1)
    return rec


def text_line(rec: dict[str, Any]) -> str:
    parts = [f"{rec['label']} step {rec['step']}/{rec['total_steps']}"]
    if "loss" in rec:
        parts.append(f"loss {rec['loss']:.4f}")
    if "margin" in rec:
        parts.append(f"margin {rec['margin']:+.4f}")
    if "accuracy" in rec:
        parts.append(f"acc {rec['accuracy']:.2f}")
    if "learning_rate" in rec:
        parts.append(f"lr {rec['learning_rate']:.2e}")
    step = max(rec["step"], 1)
    parts.append(f"{rec['elapsed_s'] / step:.2f} s/step, {_fmt_duration(rec['elapsed_s'])} elapsed")
    if rec["step"] < rec["total_steps"]:
        parts.append(f"~{_fmt_duration(rec['eta_s'])} left")
    return ", ".join(parts)


class TrainingProgress:
    """Receives each logged step (loss, reward margin…) from the trainer and reports it."""

    def __init__(self, label: str, active: bool = True, config: ProgressSettings | None = None):
        self.label = label
        self.active = active
        self.config = config or settings()
        self.bar = None
        self.total = 0
        self.start = time.monotonic()
        self.last: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []

    def begin(self, total: int) -> None:
        self.total = total
        self.start = time.monotonic()
        if self.active and self.config.interactive():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, desc=self.label, file=self.config.out(), dynamic_ncols=True, leave=True
            )

    def step(self, step: int, logs: dict[str, Any]) -> None:
        rec = step_record(self.label, step, self.total, logs, time.monotonic() - self.start)
        self.last = rec
        self.history.append(rec)
        if not self.active:
            return
        if self.bar is not None:
            self.bar.n = step
            post = {}
            if "loss" in rec:
                post["loss"] = f"{rec['loss']:.4f}"
            if "margin" in rec:
                post["margin"] = f"{rec['margin']:+.4f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.refresh()
            return
        if step == 1 or step == self.total or step % self.config.every == 0:
            self._write(rec)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _write(self, rec: dict[str, Any]) -> None:
        out = self.config.out()
        out.write((json.dumps(rec) if self.config.json else text_line(rec)) + "\n")
        out.flush()


class WorkProgress:
    """Progress of a long non-training job (materialize's bytes, import's tensors).

    A bar on a terminal; elsewhere one line (a JSON object with --json) when the work
    starts, when it ends, and between them at each further tenth done once `interval`
    seconds have passed since the last line: a log shows the job alive without flooding.
    """

    def __init__(
        self, label: str, total: int, unit: str, config: ProgressSettings | None = None, interval: float = 2.0
    ):
        self.label, self.total, self.unit = label, max(int(total), 0), unit
        self.config = config or settings()
        self.interval = interval
        self.done = 0
        self.reported = -1  # the last tenth written
        self.start = self.last = time.monotonic()
        self.bar = None
        if self.config.interactive():
            from tqdm.auto import tqdm

            scaled = unit == "bytes"
            self.bar = tqdm(
                total=self.total, desc=label, file=self.config.out(), leave=False, dynamic_ncols=True,
                unit="B" if scaled else f" {unit}", unit_scale=scaled, unit_divisor=1024,
            )  # fmt: skip

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        tenth = min(10, self.done * 10 // self.total) if self.total else 10
        now = time.monotonic()
        if self.reported < 0 or tenth == 10 or (tenth > self.reported and now - self.last >= self.interval):
            if tenth == 10 and self.reported == 10:
                return
            self.reported, self.last = tenth, now
            self._write()

    def close(self, completed: bool = True) -> None:
        """End the report; a failed job writes no final line (its one-line error follows)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif completed and self.done > 0 and self.reported < 10:  # ended short of its estimate
            self.reported = 10
            self._write()

    def record(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.start
        return {
            "event": "progress",
            "label": self.label,
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "elapsed_s": round(elapsed, 3),
        }

    def _write(self) -> None:
        rec = self.record()
        if self.config.json:
            line = json.dumps(rec)
        else:
            pct = f"{rec['done'] / rec['total']:.0%}" if rec["total"] else "100%"
            amount = (
                f"{rec['done'] / 1e6:.1f}/{rec['total'] / 1e6:.1f} MB"
                if self.unit == "bytes"
                else f"{rec['done']}/{rec['total']} {self.unit}"
            )
            line = f"{self.label}: {amount} ({pct}), {_fmt_duration(rec['elapsed_s'])} elapsed"
        out = self.config.out()
        out.write(line + "\n")
        out.flush()


@contextlib.contextmanager
def work_progress(label: str, total: int, unit: str) -> Iterator[WorkProgress]:
    p = WorkProgress(label, total, unit)
    try:
        yield p
    except BaseException:
        p.close(completed=False)
        raise
    p.close()


def trainer_callback(progress: TrainingProgress):
    """A transformers TrainerCallback feeding `progress` (built lazily: transformers is heavy)."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress.begin(state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "train_runtime" in logs:  # the trainer's closing summary, not a step
                return
            progress.step(state.global_step, logs)

        def on_train_end(self, args, state, control, **kwargs):
            progress.end()

    return _Callback()
