"""Server-side pictures and small formats for the pages: heatmap colours, ages, diffs, the lineage SVG.

Colours are CSS classes (no inline styles), so the pages run under a strict Content-Security-Policy.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from registry.db.as_json import timestamp
from registry.db.models import Recipe, Vector, utcnow
from registry.records.lineage import nodes_and_edges


def heat(c: float | None) -> str:
    """CSS class of a cosine in [-1, 1]: h-10 … h10 in steps of 0.1 (blue negative, red positive, as the CLI plot)."""
    if c is None or c != c:
        return "hna"
    return f"h{max(-10, min(10, round(c * 10)))}"


def age(t: datetime | None, now: datetime | None = None) -> str:
    if t is None:
        return ""
    s = max(0, int(((now or utcnow()) - t).total_seconds()))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


def when(t: datetime | None) -> str:
    """A stored UTC time as the CLI prints it: `2026-12-07T07:51:00Z`."""
    return timestamp(t) or ""


def detail_text(value: Any) -> str:
    """An audit detail's value for people: text as is, anything else as compact JSON (never a
    Python repr such as `{'svd_rank': None}`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def terms_text(r: Recipe) -> str:
    return " ".join(f"{t.weight:+g}·{t.vector.ref}" for t in r.terms)


def worst_cosine(v: Vector) -> tuple[str, float, bool] | None:
    """The vector's most similar other vector when it was added, |cosine| with it, and whether
    that was over the policy's threshold."""
    report = v.interference or {}
    ref, cos = report.get("most_similar"), report.get("max_abs_cosine")
    if not ref or cos is None:
        return None
    return ref, float(cos), cos > (report.get("threshold") or 1.0)


def recipe_cosine(r: Recipe) -> tuple[str, float] | None:
    """The largest |cosine| between two of a recipe's vectors, from their stored interference."""
    best = None
    vecs = [t.vector for t in r.terms]
    for i, a in enumerate(vecs):
        for b in vecs[i + 1 :]:
            found = ((a.interference or {}).get("cosines") or {}).get(b.ref) or (
                (b.interference or {}).get("cosines") or {}
            ).get(a.ref)
            if found and found.get("global") is not None and (best is None or abs(found["global"]) > best[1]):
                best = (f"{a.ref} · {b.ref}", abs(found["global"]))
    return best


HEATMAP_ROWS = 50


def interference_grid(
    report: dict[str, Any], limit: int = HEATMAP_ROWS
) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of the heatmap: the `limit` most similar other vectors (by |global cosine|),
    global then per-layer cosines; a base with a thousand vectors stays one screen."""
    cosines = report.get("cosines") or {}
    top = sorted(cosines.items(), key=lambda kv: -abs(kv[1].get("global") or 0))[:limit]
    layers = sorted({k for _, c in top for k in c.get("per_layer", {})}, key=_natural)
    rows = [
        {"ref": ref, "global": c.get("global"), "cells": [c.get("per_layer", {}).get(k) for k in layers]}
        for ref, c in top
    ]
    return layers, rows


def _natural(s: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in s.replace(".", " ").split())


def recipe_text(r: Recipe) -> str:
    """A recipe version as the YAML a person would write: what a diff compares."""
    doc = {
        "name": r.name,
        "base": r.base.name,
        "method": r.method,
        "parameters": r.params or {},
        "dtype": r.dtype,
        "terms": [{"vector": t.vector.ref, "weight": t.weight} for t in r.terms],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def diff(a: Recipe, b: Recipe) -> list[tuple[str, str]]:
    """Line diff of two recipe versions as (kind, text): kind is ' ', '-', '+' or '@'."""
    out = []
    lines = difflib.unified_diff(
        recipe_text(a).splitlines(), recipe_text(b).splitlines(), a.ref, b.ref, n=50, lineterm=""
    )
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        out.append((line[0], line[1:]))
    return out


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float
    lines: list[str]
    column: str
    href: str | None


COLUMNS = ("base", "run", "vector", "recipe", "output")
BOX_W, BOX_H, GAP_X, GAP_Y = 190, 44, 50, 14


def lineage_svg(tree: dict[str, Any]) -> dict[str, Any]:
    """Boxes and edges of the lineage DAG, laid out in columns base → run → vector → recipe → output."""
    nodes, edges = nodes_and_edges(tree)
    per_col: dict[str, list[tuple[str, str, str]]] = {c: [] for c in COLUMNS}
    for n in nodes:
        per_col[n[1]].append(n)
    tallest = max(len(v) for v in per_col.values())
    height = tallest * (BOX_H + GAP_Y) + GAP_Y
    boxes: dict[str, Box] = {}
    for ci, col in enumerate(COLUMNS):
        items = per_col[col]
        top = (height - len(items) * (BOX_H + GAP_Y) + GAP_Y) / 2
        for i, (nid, _c, label) in enumerate(items):
            href = None
            if col == "vector":
                href = "/vectors/" + nid.split(":", 1)[1]
            elif col == "recipe":
                href = "/recipes/" + nid.split(":", 1)[1]
            boxes[nid] = Box(
                10 + ci * (BOX_W + GAP_X), top + i * (BOX_H + GAP_Y), BOX_W, BOX_H,
                [line[:30] for line in label.split("\n")], col, href,
            )  # fmt: skip
    lines = [
        {
            "x1": boxes[a].x + BOX_W,
            "y1": boxes[a].y + BOX_H / 2,
            "x2": boxes[b].x,
            "y2": boxes[b].y + BOX_H / 2,
        }
        for a, b in edges
        if a in boxes and b in boxes
    ]
    width = 10 + len(COLUMNS) * (BOX_W + GAP_X)
    return {
        "width": width,
        "height": max(height, BOX_H + 2 * GAP_Y),
        "boxes": list(boxes.values()),
        "edges": lines,
    }
