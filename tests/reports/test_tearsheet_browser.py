"""tearsheet.html rendered by a real browser (headless Chromium): it loads without errors,
every chart is there, and what it shows equals our own numbers for the same returns.

Chromium comes from Debian's `chromium` package (.ci/install-chromium); without it the
tests skip. Charts are inline SVG with their text kept as text, so tick labels and heatmap
values are read from the rendered DOM and bar heights from the bar geometry.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import performance_metrics, write_tearsheet
from storm_bt.data.benchmark import equal_weight_returns

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (Debian package 'chromium'; .ci/install-chromium)")

#: The chart placeholders of quantstats' template with a benchmark (each a <div id=...>).
CHART_DIVS = ("log_returns", "vol_returns", "eoy_returns", "monthly_dist", "daily_returns",
              "rolling_beta", "rolling_vol", "rolling_sharpe", "rolling_sortino", "dd_periods",
              "dd_plot", "monthly_heatmap", "returns_dist")


def _render(html: Path, profile: Path) -> tuple[str, str]:
    """The DOM after load, and Chromium's log (console messages included)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--dump-dom", html.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def rendered(embedded_panel, tmp_path_factory):
    """Two years of real returns (5-stock equal weight vs the 20-stock universe), rendered."""
    panel = embedded_panel.since("2021-01-01")
    strategy = panel.returns().iloc[1:, :5].mean(axis=1).rename("first5")
    bench = equal_weight_returns(panel).iloc[1:]
    folder = tmp_path_factory.mktemp("browser")
    page = write_tearsheet(strategy, bench, folder / "tearsheet.html", "browser check")
    dom, log = _render(page, folder / "profile")
    return strategy, bench, dom, log


def _div(dom: str, div_id: str) -> str:
    """The DOM from <div id=div_id> to the next chart div (enough for one chart)."""
    start = dom.index(f'<div id="{div_id}"')
    nxt = re.compile(r'<div id="(?!%s")' % div_id).search(dom, start + 1)
    return dom[start:nxt.start() if nxt else len(dom)]


def _yearly(returns: pd.Series) -> pd.Series:
    return (1.0 + returns).groupby(returns.index.year).prod() - 1.0


def _table_rows(fragment: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", fragment, flags=re.S)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S) for row in rows]


def test_page_loads_without_errors_or_web_requests(rendered):
    _, _, dom, log = rendered
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert "{{" not in dom and "storm_bt:" not in dom
    assert not re.search(r'<(link|script|img)[^>]+(href|src)="https?:', dom)


def test_every_chart_is_drawn(rendered):
    _, _, dom, _ = rendered
    left = dom[dom.index('<div id="left"'):dom.index('<div id="log_returns"')]
    assert "<svg" in left, "cumulative returns chart missing"
    for div_id in CHART_DIVS:
        chart = _div(dom, div_id)
        assert "<svg" in chart and "<path" in chart, f"chart {div_id} missing"


def test_eoy_table_equals_yearly_compounded_returns(rendered):
    strategy, bench, dom, _ = rendered
    eoy = dom[dom.index('<div id="eoy"'):dom.index('<div id="ddinfo"')]
    rows = [r for r in _table_rows(eoy) if r and r[0].strip().isdigit()]
    years = [int(r[0]) for r in rows]
    want_s, want_b = _yearly(strategy), _yearly(bench)
    assert years == list(want_s.index)
    for (year, b, s, *_rest) in rows:
        assert float(b) == pytest.approx(100 * want_b[int(year)], abs=0.006)
        assert float(s) == pytest.approx(100 * want_s[int(year)], abs=0.006)


def _metric(dom: str, name: str) -> tuple[float, float]:
    m = re.search(rf"<td>{re.escape(name)}</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", dom)
    assert m, f"no {name} row"
    return tuple(float(v.rstrip("%")) for v in m.groups())


@pytest.mark.parametrize("label, key, scale", [
    ("Cumulative Return", "cumulative_wealth", 100), ("Sharpe", "sharpe", 1),
    ("Sortino", "sortino", 1), ("Max Drawdown", "max_drawdown", -100),
    ("Volatility (ann.)", "annual_volatility", 100), ("Calmar", "calmar", 1)])
def test_key_metrics_equal_performance_metrics(rendered, label, key, scale):
    strategy, bench, dom, _ = rendered
    shown_b, shown_s = _metric(dom, label)
    for shown, series in ((shown_s, strategy), (shown_b, bench)):
        value = performance_metrics(series)[key] - (1.0 if key == "cumulative_wealth" else 0.0)
        assert shown == pytest.approx(round(scale * value, 2), abs=0.011)


def test_cagr_row_equals_annual_return(rendered):
    strategy, bench, dom, _ = rendered
    row = re.search(r"<td>CAGR[^<]*</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", dom)
    shown_b, shown_s = (float(v.rstrip("%")) for v in row.groups())
    assert shown_s == pytest.approx(100 * performance_metrics(strategy)["annual_return"], abs=0.006)
    assert shown_b == pytest.approx(100 * performance_metrics(bench)["annual_return"], abs=0.006)


_RECT = re.compile(r"<path d=\"M ([\d.]+) ([\d.]+)\s+L ([\d.]+) ([\d.]+)\s+L ([\d.]+) ([\d.]+)\s+"
                   r"L ([\d.]+) ([\d.]+)\s+z\s*\"[^>]*fill: (#[0-9a-f]{6})")


def _ticks(svg: str, axis: str) -> list[tuple[float, str]]:
    """(pixel position of the grid line, label) of each x or y tick."""
    out = []
    parts = re.split(r'<g id="([xy]tick_\d+|matplotlib\.axis_\d+|patch_\d+|legend_\d+)">', svg)
    for name, block in zip(parts[1::2], parts[2::2]):
        if not name.startswith(f"{axis}tick_"):
            continue
        line = re.search(r'<path d="M ([\d.]+) ([\d.]+)', block)
        label = re.search(r"<text[^>]*>([^<]*)</text>", block)
        if line and label:
            out.append((float(line.group(1 if axis == "x" else 2)), label.group(1)))
    return out


def test_eoy_chart_draws_each_year_above_its_label(rendered):
    strategy, bench, dom, _ = rendered
    svg = _div(dom, "eoy_returns")
    yt = [(y, float(t.rstrip("%")) / 100) for y, t in _ticks(svg, "y") if t]
    (y0, v0), (y1, v1) = yt[0], yt[-1]
    per_unit = (y0 - y1) / (v1 - v0)           # pixels per unit of return (y grows down)
    zero = y0 + v0 * per_unit
    bars = []
    for m in _RECT.finditer(svg):
        x0, ya, x1, _, _, yb, _, _, fill = m.groups()
        x0, x1, ya, yb = float(x0), float(x1), float(ya), float(yb)
        if abs(ya - zero) < 0.5 and fill in ("#fedd78", "#348dc1"):
            bars.append((x0, x1, fill, (zero - yb) / per_unit))
    labels = _ticks(svg, "x")
    want = {"#fedd78": _yearly(bench), "#348dc1": _yearly(strategy)}
    assert [int(t) for _, t in labels] == list(want["#348dc1"].index)
    for x, year in labels:
        # pandas draws benchmark | strategy side by side, meeting at the tick.
        near = {fill: value for x0, x1, fill, value in bars if x0 - 1 < x < x1 + 1}
        assert set(near) == set(want), f"no bars at the label {year}"
        for fill, value in near.items():
            assert value == pytest.approx(want[fill][int(year)], abs=2e-3), (year, fill)


def test_monthly_heatmap_shows_monthly_compounded_returns(rendered):
    strategy, _, dom, _ = rendered
    svg = _div(dom, "monthly_heatmap")
    shown = [float(t) for t in re.findall(r"<text[^>]*>(-?\d+\.\d\d)</text>", svg)]
    monthly = (1.0 + strategy).groupby([strategy.index.year, strategy.index.month]).prod() - 1.0
    assert shown == pytest.approx(list(np.round(100 * monthly.to_numpy(), 2)), abs=0.006)
