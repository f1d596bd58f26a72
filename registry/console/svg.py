"""Evaluation pictures as SVG text drawn on the server: line plots over η, heatmaps over two η.

Readable without colour: every point has a marker and its value written next to it, every
heatmap cell its number, axes and limits are labelled in words.

Built with xml.etree, so every name and number is escaped by construction; colours are both
presentation attributes (a standalone file) and classes (console.css), never inline styles (the
console's Content-Security-Policy allows none).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

SVG_NS = "http://www.w3.org/2000/svg"
# viridis, low → high: the direction of the CLI's sweep heatmaps (registry.evaluation.plots)
VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c",
           "#28ae80", "#5ec962", "#addc30", "#fde725")  # fmt: skip
DARK_STEPS = 5  # classes v0 … v4 are dark: their numbers are written in white

W, H = 460, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 30, 46
CELL_W, CELL_H = 64, 34


def number(v: float | None) -> str:
    """A value as written on a picture: about three significant digits, '—' when missing."""
    if v is None or not math.isfinite(v):
        return "—"
    a = abs(v)
    if a >= 1e5 or (0 < a < 1e-3):
        return f"{v:.2e}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if a < 1 else f"{v:.2f}"


def eta(v: float) -> str:
    return f"{v:g}"


def _svg(width: float, height: float, css: str, title: str) -> ET.Element:
    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "class": f"evplot {css}",
            "width": f"{width:g}",
            "height": f"{height:g}",
            "viewBox": f"0 0 {width:g} {height:g}",
            "role": "img",
            "aria-label": title,
        },
    )
    ET.SubElement(root, "title").text = title
    return root


def _text(
    parent: ET.Element, x: float, y: float, text: str, css: str, anchor: str = "middle", **attrs
) -> None:
    el = ET.SubElement(
        parent, "text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "class": css, "text-anchor": anchor, **attrs}
    )
    el.text = text


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about n of them)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, t = [], first
    while t <= hi + step * 1e-9:
        out.append(round(t, 12) + 0.0)
        t += step
    return out


def line_plot(
    metric: str,
    term: str,
    etas: Sequence[float],
    values: Sequence[float | None],
    threshold: float | None = None,
    threshold_label: str = "limit",
) -> str:
    """`metric` over η of `term`: one marker per grid point, its value written above it.

    With `threshold` (an upper limit, e.g. the perplexity drift allowed), a dashed line labelled
    with the limit, and points above it drawn as crosses labelled "over".
    """
    pts = sorted(zip(etas, values, strict=True))
    finite = [v for _, v in pts if v is not None and math.isfinite(v)]
    ys = finite + ([threshold] if threshold is not None else [])
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if y_hi - y_lo < 1e-12:
        y_lo, y_hi = y_lo - 1, y_hi + 1
    pad = (y_hi - y_lo) * 0.12
    y_lo, y_hi = y_lo - pad, y_hi + pad
    x_lo, x_hi = (min(p[0] for p in pts), max(p[0] for p in pts)) if pts else (0.0, 1.0)
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    x_pad = (x_hi - x_lo) * 0.06
    x_lo, x_hi = x_lo - x_pad, x_hi + x_pad

    def px(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        return H - BOTTOM - (y - y_lo) / (y_hi - y_lo) * (H - TOP - BOTTOM)

    root = _svg(W, H, "line", f"{metric} over η ({term})")
    _text(root, W / 2, 18, metric, "plot-title")
    axes = ET.SubElement(root, "g", {"class": "axes"})
    ET.SubElement(axes, "line", {"class": "axis", "x1": f"{LEFT}", "y1": f"{H - BOTTOM}",
                                 "x2": f"{W - RIGHT}", "y2": f"{H - BOTTOM}", "stroke": "#5b6675"})  # fmt: skip
    ET.SubElement(axes, "line", {"class": "axis", "x1": f"{LEFT}", "y1": f"{TOP}",
                                 "x2": f"{LEFT}", "y2": f"{H - BOTTOM}", "stroke": "#5b6675"})  # fmt: skip
    for x, _ in pts:
        _text(axes, px(x), H - BOTTOM + 16, eta(x), "tick x-tick")
    for y in _ticks(y_lo, y_hi):
        _text(axes, LEFT - 6, py(y) + 4, f"{y:.6g}", "tick y-tick", "end")
        ET.SubElement(axes, "line", {"class": "grid", "x1": f"{LEFT}", "x2": f"{W - RIGHT}",
                                     "y1": f"{py(y):.1f}", "y2": f"{py(y):.1f}", "stroke": "#e3e7ec"})  # fmt: skip
    _text(axes, (LEFT + W - RIGHT) / 2, H - 8, f"η ({term})", "axis-label")
    if threshold is not None:
        g = ET.SubElement(root, "g", {"class": "threshold", "data-value": repr(float(threshold))})
        ET.SubElement(g, "line", {"x1": f"{LEFT}", "x2": f"{W - RIGHT}", "y1": f"{py(threshold):.1f}",
                                  "y2": f"{py(threshold):.1f}", "stroke": "#8a1f1f",
                                  "stroke-dasharray": "6 4"})  # fmt: skip
        _text(
            g,
            W - RIGHT - 2,
            py(threshold) - 5,
            f"{threshold_label} {number(threshold)}",
            "threshold-label",
            "end",
        )
    path = [(px(x), py(v)) for x, v in pts if v is not None and math.isfinite(v)]
    if len(path) > 1:
        ET.SubElement(root, "polyline", {"class": "series", "fill": "none", "stroke": "#2457a6",
                                         "stroke-width": "2",
                                         "points": " ".join(f"{a:.1f},{b:.1f}" for a, b in path)})  # fmt: skip
    for x, v in pts:
        ok = v is not None and math.isfinite(v)
        over = ok and threshold is not None and v > threshold
        g = ET.SubElement(
            root,
            "g",
            {"class": "point over" if over else "point", "data-eta": repr(float(x)),
             "data-value": repr(float(v)) if ok else ""},
        )  # fmt: skip
        cx, cy = px(x), py(v) if ok else H - BOTTOM
        if over:  # a cross: a point over the limit reads as such in black and white
            d = f"M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} M{cx - 5:.1f},{cy + 5:.1f} L{cx + 5:.1f},{cy - 5:.1f}"
            ET.SubElement(g, "path", {"class": "marker", "d": d, "stroke": "#8a1f1f", "stroke-width": "2.5"})
        elif ok:
            ET.SubElement(g, "circle", {"class": "marker", "cx": f"{cx:.1f}", "cy": f"{cy:.1f}", "r": "4.5",
                                        "fill": "#fff", "stroke": "#2457a6", "stroke-width": "2"})  # fmt: skip
        label = number(v) + (" over" if over else "")
        _text(g, cx, cy - 9, label, "value")
    return ET.tostring(root, encoding="unicode")


def shade(v: float, lo: float, hi: float) -> int:
    """The viridis step (0 … 8) of v between lo and hi; the middle step when they are equal."""
    if hi - lo < 1e-12:
        return len(VIRIDIS) // 2
    return max(0, min(len(VIRIDIS) - 1, round((v - lo) / (hi - lo) * (len(VIRIDIS) - 1))))


def heatmap(
    metric: str,
    terms: tuple[str, str],
    cells: Mapping[tuple[float, float], float | None],
    threshold: float | None = None,
) -> str:
    """`metric` over (η of terms[0], η of terms[1]): columns the first η left to right, rows the
    second η bottom to top (as the CLI's heatmaps), the value written in every cell; a cell over
    `threshold` says "over" under its number. A missing grid point is an empty cell with '—'."""
    xs = sorted({k[0] for k in cells})
    ys = sorted({k[1] for k in cells})
    finite = [v for v in cells.values() if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    left, top = 78, 30
    width = left + len(xs) * CELL_W + 20
    height = top + len(ys) * CELL_H + 88
    root = _svg(width, height, "heat", f"{metric} over η ({terms[0]}) and η ({terms[1]})")
    _text(root, width / 2, 18, metric, "plot-title")
    for j, y in enumerate(reversed(ys)):
        for i, x in enumerate(xs):
            v = cells.get((x, y))
            ok = v is not None and math.isfinite(v)
            step = shade(v, lo, hi) if ok else None
            over = ok and threshold is not None and v > threshold
            css = "cell" + (" over" if over else "") + ("" if ok else " missing")
            g = ET.SubElement(
                root,
                "g",
                {"class": css, "data-x": repr(float(x)), "data-y": repr(float(y)),
                 "data-value": repr(float(v)) if ok else ""},
            )  # fmt: skip
            rx, ry = left + i * CELL_W, top + j * CELL_H
            ET.SubElement(g, "rect", {"x": f"{rx}", "y": f"{ry}", "width": f"{CELL_W}", "height": f"{CELL_H}",
                                      "class": f"v{step}" if ok else "vna",
                                      "fill": VIRIDIS[step] if ok else "#f0f0f0", "stroke": "#fff"})  # fmt: skip
            ink = "on-dark" if ok and step < DARK_STEPS else "on-light"
            fill = "#ffffff" if ink == "on-dark" else "#1d232b"
            _text(g, rx + CELL_W / 2, ry + (15 if over else 21), number(v), f"value {ink}", fill=fill)
            if over:
                _text(g, rx + CELL_W / 2, ry + 29, "over", f"flag {ink}", fill=fill)
    for i, x in enumerate(xs):
        _text(root, left + i * CELL_W + CELL_W / 2, top + len(ys) * CELL_H + 15, eta(x), "tick x-tick")
    for j, y in enumerate(reversed(ys)):
        _text(root, left - 6, top + j * CELL_H + CELL_H / 2 + 4, eta(y), "tick y-tick", "end")
    _text(root, left + len(xs) * CELL_W / 2, top + len(ys) * CELL_H + 32, f"η ({terms[0]}) →", "axis-label")
    _text(root, 12, top + len(ys) * CELL_H / 2, f"η ({terms[1]}) →", "axis-label",
          transform=f"rotate(-90 12 {top + len(ys) * CELL_H / 2:.1f})")  # fmt: skip
    # the scale: low (dark) to high (bright), with the numbers at both ends
    legend = ET.SubElement(root, "g", {"class": "legend"})
    ly, sw = top + len(ys) * CELL_H + 50, 14
    _text(legend, left - 6, ly + 11, f"low {number(lo)}", "legend-label", "end")
    for k, colour in enumerate(VIRIDIS):
        ET.SubElement(legend, "rect", {"x": f"{left + k * sw}", "y": f"{ly}", "width": f"{sw}", "height": "14",
                                       "class": f"v{k}", "fill": colour})  # fmt: skip
    _text(legend, left + len(VIRIDIS) * sw + 6, ly + 11, f"{number(hi)} high", "legend-label", "start")
    return ET.tostring(root, encoding="unicode")
