"""reports.tearsheet, reports.plots and reports.io: files appear whole, in the right place."""
from __future__ import annotations

import json
import os
import re
import types

import numpy as np
import pandas as pd
import pytest

import reports.tearsheet as tearsheet
from reports import (
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    plot_equity_drawdown,
    write_tearsheet,
)
from reports.metrics import max_drawdown, sharpe
from storm_bt.data.benchmark import equal_weight_returns
from storm_bt.errors import StormBtError


@pytest.fixture(scope="module")
def slice_2022(embedded_panel):
    """A year of real returns: a 5-stock equal-weight 'strategy' and the 20-stock benchmark."""
    panel = embedded_panel.since("2022-01-01")
    strategy = panel.returns().iloc[1:, :5].mean(axis=1).rename("first5")
    return strategy, equal_weight_returns(panel).iloc[1:]


def _leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def _metric_cells(html: str, name: str) -> tuple[str, ...]:
    m = re.search(rf"<td>{re.escape(name)}</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", html)
    assert m, f"no {name} row in the tear sheet"
    return m.groups()


def test_tearsheet_with_benchmark_series_on_real_data(slice_2022, tmp_path):
    strategy, bench = slice_2022
    out = write_tearsheet(strategy, bench, tmp_path / "run" / "tearsheet.html", "embedded 2022")
    assert out == tmp_path / "run" / "tearsheet.html"
    html = out.read_text(encoding="utf-8")
    assert "embedded 2022" in html and "Sharpe" in html
    assert "Benchmark: EQUAL-WEIGHT" in html
    # Columns are benchmark, strategy; quantstats' numbers agree with ours under pandas 3.
    bench_sharpe, strat_sharpe = _metric_cells(html, "Sharpe")
    assert float(strat_sharpe) == pytest.approx(round(sharpe(strategy), 2))
    assert float(bench_sharpe) == pytest.approx(round(sharpe(bench), 2))
    assert float(_metric_cells(html, "Max Drawdown")[1].rstrip("%")) == pytest.approx(
        -round(100 * max_drawdown(strategy), 2))
    assert _leftovers(out.parent) == []


def test_constant_strategy_is_written_without_benchmark(slice_2022, tmp_path):
    _, bench = slice_2022
    flat = pd.Series(0.0, index=bench.index[:60], name="cash")
    out = write_tearsheet(flat, bench, tmp_path / "flat.html", "flat")
    html = out.read_text(encoding="utf-8")
    assert "Sharpe" in html and "Benchmark:" not in html


def test_failed_write_leaves_no_partial_file(slice_2022, tmp_path, monkeypatch):
    strategy, bench = slice_2022
    dest = tmp_path / "tearsheet.html"
    dest.write_text("old report")

    def broken_html(returns, benchmark=None, output=None, **kw):
        assert isinstance(benchmark, pd.Series) and benchmark.index.equals(returns.index)
        with open(output, "w") as fh:
            fh.write("<html>half")
        raise RuntimeError("quantstats failed")

    import quantstats  # the fake keeps its file: the template is read from beside it

    fake = types.SimpleNamespace(reports=types.SimpleNamespace(html=broken_html),
                                 __file__=quantstats.__file__)
    monkeypatch.setattr(tearsheet, "_quantstats", lambda: fake)
    with pytest.raises(RuntimeError, match="quantstats failed"):
        write_tearsheet(strategy, bench, dest, "x")
    assert dest.read_text() == "old report"
    assert _leftovers(tmp_path) == []


def test_benchmark_string_is_refused_before_quantstats(slice_2022, tmp_path, monkeypatch):
    monkeypatch.setattr(tearsheet, "_quantstats", lambda: pytest.fail("quantstats called"))
    with pytest.raises(StormBtError, match="not a ticker"):
        write_tearsheet(slice_2022[0], "SPY", tmp_path / "t.html", "x")


def test_benchmark_without_common_dates_is_an_error(slice_2022, tmp_path):
    strategy, _ = slice_2022
    old = pd.Series(0.01, index=pd.bdate_range("2000-01-03", periods=10), name="old")
    with pytest.raises(StormBtError, match="no return on any date"):
        write_tearsheet(strategy, old, tmp_path / "t.html", "x")


def test_unwritable_folder_is_a_storm_bt_error(slice_2022, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    with pytest.raises(StormBtError, match=r"cannot write to .*afile.*choose another --out"):
        write_tearsheet(slice_2022[0], None, blocker / "sub" / "t.html", "x")
    with pytest.raises(StormBtError, match="it is a file, not a folder"):
        ensure_writable_dir(blocker)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores permission bits")
def test_read_only_folder_is_a_storm_bt_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StormBtError, match="permission denied"):
            ensure_writable_dir(ro)
    finally:
        ro.chmod(0o700)


def test_equity_drawdown_png(slice_2022, tmp_path):
    strategy, bench = slice_2022
    out = plot_equity_drawdown(strategy, tmp_path / "plots" / "equity.png", benchmark=bench)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _leftovers(out.parent) == []


def test_atomic_json_sorts_keys_and_writes_nan_as_null(tmp_path):
    path = atomic_write_json({"b": np.float64("nan"), "a": [np.int64(1), float("inf")],
                              "d": pd.Timestamp("2022-01-03")}, tmp_path / "m.json")
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"') < text.index('"d"')
    assert json.loads(text) == {"a": [1, None], "b": None, "d": "2022-01-03T00:00:00"}


def test_every_atomic_output_reaches_the_disk_before_its_rename(tmp_path, monkeypatch):
    """CSV, text and JSON outputs are fsynced as temporary files, then renamed: after a
    power cut a destination holds the old file or the whole new one."""
    import reports.io as io

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(io.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(
        f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(io.os, "replace", lambda a, b: (events.append(("replace", str(a))),
                                                        real_replace(a, b)))
    atomic_write_csv(pd.DataFrame({"r": [0.1]}), tmp_path / "f.csv")
    atomic_write_text(tmp_path / "t.md", "x")
    atomic_write_json({"a": 1}, tmp_path / "m.json")
    assert [kind for kind, _ in events] == ["fsync", "replace"] * 3
    for (_, synced), (_, renamed) in zip(events[::2], events[1::2]):
        assert synced == renamed and ".tmp" in renamed


def test_atomic_text_and_csv_replace_the_old_file(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n"
    frame = pd.DataFrame({"r": [0.1, 0.2]}, index=pd.Index(["a", "b"], name="k"))
    csv = atomic_write_csv(frame, tmp_path / "deep" / "f.csv")
    assert pd.read_csv(csv, index_col="k").equals(frame)
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "deep") == []


def test_a_full_disk_is_a_storm_bt_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A writer failing for the destination's sake (no space left) names the file and the
    fix; the old file stays and no temporary file is left. Other OS errors stay as they are."""
    import errno

    path = atomic_write_text(tmp_path / "x.txt", "old")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(StormBtError, match=r"cannot write to .*x\.txt: no space left on "
                                           r"device; choose another --out"):
        atomic_write_csv(pd.DataFrame({"r": [0.1]}), path)
    assert path.read_text() == "old" and _leftovers(tmp_path) == []

    def broken(self, *args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="Bad file descriptor") as caught:
        atomic_write_csv(pd.DataFrame({"r": [0.1]}), path)
    assert not isinstance(caught.value, StormBtError) and _leftovers(tmp_path) == []


@pytest.mark.parametrize("in_the_way", ["folder", "file"])
def test_a_staged_run_moves_nothing_when_one_output_cannot_be_placed(tmp_path, in_the_way):
    """A folder where an output file goes (or a file where an output folder goes) is found
    before any file moves: one StormBtError naming it, and the run folder keeps what it had."""
    from reports import staged_outputs

    out = tmp_path / "run"
    out.mkdir()
    (out / "a.csv").write_text("old a")
    if in_the_way == "folder":
        (out / "b.csv").mkdir()
    else:
        (out / "b.csv").write_text("old b")
    with pytest.raises(StormBtError, match=rf"cannot write to .*b\.csv: a {in_the_way} of that "
                                           "name is in the way; move it away or choose "
                                           "another --out"):
        with staged_outputs(out) as stage:
            (stage / "a.csv").write_text("new a")
            if in_the_way == "folder":
                (stage / "b.csv").write_text("new b")
            else:
                (stage / "b.csv").mkdir()
                (stage / "b.csv" / "sheet.png").write_text("new")
            (stage / "c.csv").write_text("new c")
    assert (out / "a.csv").read_text() == "old a"
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]


def test_a_run_moved_into_a_folder_removes_the_earlier_runs_outputs_it_did_not_write(tmp_path):
    """--overwrite replaces a folder's run: a two-seed run's ensembles and seed folders do
    not stay beside a one-seed run's files (they used to); files that no run writes stay."""
    from reports import staged_outputs

    out = tmp_path / "run"
    with staged_outputs(out) as stage:
        for name in ("factors.csv", "ensembles.csv", "config.json"):
            (stage / name).write_text("old")
        (stage / "seed-2").mkdir()
        (stage / "seed-2" / "metrics.json").write_text("old")
    (out / "notes.txt").write_text("mine")
    with staged_outputs(out) as stage:
        for name in ("factors.csv", "config.json"):
            (stage / name).write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "factors.csv", "notes.txt"]
    assert (out / "factors.csv").read_text() == "new" and (out / "notes.txt").read_text() == "mine"
