"""The console's evaluation pictures, parsed back as XML: every grid point has its marker and its
value written, every heatmap cell its number and a colour step that rises with the value (the
CLI's direction), labels escaped, the retention limit drawn and points over it marked in words."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from registry.console import svg

NS = {"s": svg.SVG_NS}


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{{{svg.SVG_NS}}}svg"
    return root


def texts(el: ET.Element, css: str) -> list[str]:
    return [t.text for t in el.iter(f"{{{svg.SVG_NS}}}text") if css in (t.get("class") or "").split()]


def test_line_plot_has_a_marker_and_a_value_per_point():
    etas, values = [1.0, -1.0, 0.0, 0.5, -0.5], [31.25, 4.0, 12.5, 20.0, 8.0]
    root = parse(svg.line_plot("answer_length", "verbose", etas, values))
    points = root.findall("s:g[@class='point']", NS)
    got = sorted((float(p.get("data-eta")), float(p.get("data-value"))) for p in points)
    assert got == sorted(zip(etas, values, strict=True))
    for p in points:
        assert p.find("s:circle", NS) is not None
        assert p.find("s:text", NS).text == svg.number(float(p.get("data-value")))
    # x ticks are the grid's η, left to right; the marker positions follow η and the value
    assert texts(root, "x-tick") == ["-1", "-0.5", "0", "0.5", "1"]
    circles = sorted((float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{{{svg.SVG_NS}}}circle"))
    by_x = [v for _, v in sorted(zip(etas, values, strict=True))]
    for i in range(len(by_x)):  # svg y grows downwards: a larger value sits higher
        for j in range(len(by_x)):
            assert (by_x[i] > by_x[j]) == (circles[i][1] < circles[j][1])
    line = root.find("s:polyline", NS)
    assert len(line.get("points").split()) == 5
    assert "answer_length" in texts(root, "plot-title") and "η (verbose)" in texts(root, "axis-label")
    assert root.find("s:title", NS).text == "answer_length over η (verbose)"


def test_line_plot_limit_and_points_over_it():
    root = parse(svg.line_plot("ppl_drift", "v", [-1, 0, 1], [12.0, 0.0, 3.0], threshold=5.0))
    limit = root.find("s:g[@class='threshold']", NS)
    assert float(limit.get("data-value")) == 5.0
    assert texts(limit, "threshold-label") == ["limit 5.00"]
    over = root.findall("s:g[@class='point over']", NS)
    assert [float(p.get("data-eta")) for p in over] == [-1.0]
    assert over[0].find("s:path", NS) is not None and over[0].find("s:circle", NS) is None  # a cross
    assert over[0].find("s:text", NS).text == "12.0 over"
    # the limit is drawn even when every point is far below it (it sets the axis range)
    root = parse(svg.line_plot("ppl_drift", "v", [0, 1], [0.1, 0.2], threshold=50.0))
    y_limit = float(root.find("s:g[@class='threshold']/s:line", NS).get("y1"))
    assert 0 < y_limit < float(root.get("height"))


def test_line_plot_missing_value_and_single_point():
    root = parse(svg.line_plot("m", "v", [0.0, 1.0], [float("nan"), 2.0]))
    pts = {float(p.get("data-eta")): p for p in root.findall("s:g", NS) if "point" in p.get("class", "")}
    assert pts[0.0].get("data-value") == "" and pts[0.0].find("s:text", NS).text == "—"
    assert root.find("s:polyline", NS) is None  # one finite point: no line
    root = parse(svg.line_plot("m", "v", [0.5], [3.0]))
    assert texts(root, "x-tick") == ["0.5"] and texts(root, "value") == ["3.00"]


def test_heatmap_cells_hold_their_numbers_and_rising_colours():
    xs, ys = [-1.0, 0.0, 1.0], [-0.5, 0.5]
    cells = {(x, y): 10 * x + y for x in xs for y in ys}
    root = parse(svg.heatmap("answer_length", ("a", "b"), cells))
    got = root.findall("s:g[@class='cell']", NS)
    assert len(got) == 6
    steps = {}
    for g in got:
        x, y, v = float(g.get("data-x")), float(g.get("data-y")), float(g.get("data-value"))
        assert v == cells[(x, y)]
        assert g.find("s:text", NS).text == svg.number(v)
        rect = g.find("s:rect", NS)
        step = int(rect.get("class")[1:])
        assert rect.get("fill") == svg.VIRIDIS[step]
        steps[(x, y)] = (step, float(rect.get("x")), float(rect.get("y")))
    # colour rises with the value: lowest cell the darkest step, highest the brightest (viridis)
    assert steps[(-1.0, -0.5)][0] == 0 and steps[(1.0, 0.5)][0] == len(svg.VIRIDIS) - 1
    order = sorted(cells, key=cells.get)
    assert [steps[k][0] for k in order] == sorted(steps[k][0] for k in order)
    # first η left to right, second η bottom to top (origin lower, as the CLI's imshow)
    assert steps[(-1.0, 0.5)][1] < steps[(0.0, 0.5)][1] < steps[(1.0, 0.5)][1]
    assert steps[(0.0, 0.5)][2] < steps[(0.0, -0.5)][2]
    assert texts(root, "x-tick") == ["-1", "0", "1"] and texts(root, "y-tick") == ["0.5", "-0.5"]
    assert texts(root, "legend-label") == ["low -10.5", "10.5 high"]
    # numbers on dark cells are white, on bright cells dark (readable either way)
    dark = [g for g in got if int(g.find("s:rect", NS).get("class")[1:]) < svg.DARK_STEPS]
    assert dark and all("on-dark" in g.find("s:text", NS).get("class") for g in dark)


def test_heatmap_missing_point_limit_and_constant_values():
    cells = {(0.0, 0.0): 1.0, (0.0, 1.0): 9.0, (1.0, 0.0): None, (1.0, 1.0): 2.0}
    root = parse(svg.heatmap("ppl_drift", ("a", "b"), cells, threshold=5.0))
    missing = root.find("s:g[@class='cell missing']", NS)
    assert (missing.get("data-x"), missing.get("data-y")) == ("1.0", "0.0")
    assert missing.find("s:text", NS).text == "—"
    over = root.findall("s:g[@class='cell over']", NS)
    assert [(g.get("data-x"), g.get("data-y")) for g in over] == [("0.0", "1.0")]
    assert texts(over[0], "flag") == ["over"]
    same = parse(svg.heatmap("m", ("a", "b"), {(0.0, 0.0): 3.0, (1.0, 0.0): 3.0}))
    assert {
        r.get("class") for r in same.iter(f"{{{svg.SVG_NS}}}rect") if r.get("width") == str(svg.CELL_W)
    } == {f"v{len(svg.VIRIDIS) // 2}"}


@pytest.mark.parametrize(
    "name", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a\u202egnp.exe"]
)
def test_names_are_escaped(name):
    for text in (
        svg.line_plot(name, name, [0.0, 1.0], [1.0, 2.0], threshold=1.5, threshold_label=name),
        svg.heatmap(name, (name, name), {(0.0, 0.0): 1.0}),
    ):
        root = parse(text)  # well-formed XML: nothing broke out of its text node or attribute
        assert "<script" not in text and "<img" not in text
        assert root.find("s:title", NS).text.startswith(name)
        assert all(el.tag.split("}")[1] in {"svg", "title", "g", "text", "line", "polyline", "circle", "path", "rect"}
                   for el in root.iter())  # fmt: skip


def test_numbers():
    assert [svg.number(v) for v in (0.0, 0.5, 3.14159, 12.345, 123.4, -0.0123, 2e-5, 3e6, None, math.inf)] == [
        "0", "0.5", "3.14", "12.3", "123", "-0.0123", "2.00e-05", "3.00e+06", "—", "—"
    ]  # fmt: skip
    assert svg._ticks(0, 1) == [0.0, 0.25, 0.5, 0.75, 1.0]
