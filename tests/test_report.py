"""``report.html``: one static page per results folder, written at the end of every run and by ``ldce report``;
checked in a real headless Chromium where one is installed."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from browser import CHROMIUM, Browser
from cli_helpers import (
    good_sample,
    ldce_here,
    ldce_in_process,
    ldce_status,
    png,
    predict_args,
    tiny_config,
    write_shard,
)
from PIL import Image

from ldce.callbacks.report import RunReport
from ldce.report import write_report
from ldce.report.folder import origin
from ldce.report.page import OUTCOME_LABELS
from ldce.results.record import Record, RecordFiles

KEYS = [f"s{i:03d}" for i in range(5)]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny-model run (5 guided steps, step GIFs) of five inputs and one that cannot be decoded, in this process."""
    folder = tmp_path_factory.mktemp("report")
    samples = [good_sample(i) for i in range(5)] + [{**good_sample(5), "__key__": "broken", "png": b"not a png"}]
    write_shard(folder / "shard.tar", samples)
    config = tiny_config(folder, str(folder / "shard.tar"), method={"ddim_steps": 10, "strength": 0.5})
    status = ldce_status(
        "-q", *predict_args(config, folder / "out", "--writer.save_steps", "true", "--wandb.mode", "disabled")
    )
    assert status == 0
    return folder / "out"


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]


def _outcome(record: dict) -> str:
    if record["status"] == "failed":
        return "failed"
    return "already_target" if record["already_target"] else "flipped" if record["flipped"] else "not_flipped"


class _Keys(HTMLParser):
    """The keys of the page's input rows (their key cells' ``data-value``)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        if tag == "td" and found.get("class") == "key":
            self.keys.append(found["data-value"])


def _page_keys(page: Path) -> list[str]:
    parser = _Keys()
    parser.feed(page.read_text())
    return parser.keys


VIDEOS_LOADED = """Promise.all([...document.querySelectorAll('video')].map(v => new Promise(done => {
    const size = () => done([v.getAttribute('src'), v.videoWidth]);
    if (v.readyState >= 1) size(); else { v.onloadedmetadata = size; v.onerror = size; v.load(); }
})))"""
STEP_VIDEOS = """[...document.querySelectorAll('video')].map(v => {
    const link = v.closest('figure').querySelector('figcaption a');
    return [v.controls, v.preload, v.autoplay || !v.paused, link.getAttribute('href') === v.getAttribute('src'),
            link.target === '_blank'];
})"""
VISIBLE = "[...document.querySelectorAll('tr.input')].filter(r => getComputedStyle(r).display !== 'none')"


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the page cannot be checked in a browser")
def test_the_page_of_a_run_loads_every_picture_lists_every_input_and_filters_and_sorts(run, tmp_path):
    """Every <img> decodes in Chromium; one row per input with the records' outcomes; ?status= and the
    text box hide exactly the other rows; a column header sorts; a screenshot shows the page."""
    records = _records(run)
    outcomes = [_outcome(r) for r in records]
    assert len(records) == 6 and outcomes.count("failed") == 1
    page = (run / "report.html").resolve()
    with Browser(tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        images = browser.evaluate("[...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])")
        assert [src for src, width in images if width == 0] == []
        videos = browser.evaluate(VIDEOS_LOADED)
        assert [src for src, width in videos if width == 0] == [], "every step video (MP4 with PyAV) decodes"
        steps = browser.evaluate(STEP_VIDEOS)
        assert len(steps) == 5 and all(s == [True, "metadata", False, True, True] for s in steps), (
            "each step video has controls, loads only its metadata, does not play by itself, and its caption "
            "links to the file in a new tab"
        )
        assert len(images) + len(videos) >= 5 * 6, (
            "original, counterfactual, difference, consensus, steps and plot of each done input"
        )
        rows = browser.evaluate("[...document.querySelectorAll('tr.input')].map(r => r.dataset.status)")
        assert sorted(rows) == sorted(outcomes)
        key_column = "[...document.querySelectorAll('tr.input td.key')].map(td => td.dataset.value)"
        assert browser.evaluate(key_column) == sorted(r["key"] for r in records)
        browser.screenshot(tmp_path / "report.png")

        browser.open(page.as_uri() + "?status=failed")
        assert browser.evaluate(f"{VISIBLE}.map(r => r.querySelector('td.key').dataset.value)") == ["broken"]
        reason = next(r["reason"] for r in records if r["key"] == "broken")
        assert browser.evaluate(f"{VISIBLE}[0].querySelector('.reason').innerText") == reason
        browser.evaluate(
            "const s = document.getElementById('status'); s.value = ''; s.dispatchEvent(new Event('change'))"
        )
        browser.evaluate(
            "const q = document.getElementById('q'); q.value = 's003'; q.dispatchEvent(new Event('input'))"
        )
        assert browser.evaluate(f"{VISIBLE}.map(r => r.querySelector('td.key').dataset.value)") == ["s003"]
        assert browser.evaluate("location.search") == "?q=s003", "the filtered view can be linked"

        browser.evaluate(
            "document.getElementById('q').value = ''; document.getElementById('q').dispatchEvent(new Event('input'))"
        )
        browser.evaluate(
            "[...document.querySelectorAll('#inputs th')].find(th => th.textContent.trim() === 'L1').click()"
        )
        column = browser.evaluate(
            "[...document.querySelectorAll('#inputs th')].findIndex(th => th.textContent.trim() === 'L1')"
        )
        l1 = browser.evaluate(
            f"[...document.querySelectorAll('tr.input')].map(r => r.children[{column}].dataset.value)"
        )
        done_l1 = sorted(r["l1"] for r in records if r["status"] == "done")
        assert [float(v) for v in l1 if v] == pytest.approx(done_l1) and l1[0] == "", "ascending, no value first"
    shot = np.asarray(Image.open(tmp_path / "report.png").convert("L"))
    assert shot.shape == (900, 1280) and shot.std() > 10, "the screenshot shows the page, not a blank"


def test_a_run_cut_off_part_way_shows_exactly_the_inputs_it_recorded(run, tmp_path):
    """Without records.jsonl and summary.json, with one record part lost and the last line of another
    cut in half, the page lists exactly the inputs of the complete record lines, and says the run did not end."""
    folder = tmp_path / "cut"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("report*", "records.jsonl", "summary.json"))
    parts = sorted((folder / "records").glob("*.jsonl"), key=lambda p: len(p.read_text().splitlines()))
    assert len(parts) == 2, "one record part per batch of four"
    parts[0].unlink()
    lines = parts[1].read_text().splitlines()
    parts[1].write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    finished = sorted(json.loads(line)["key"] for line in lines[:-1])

    page = write_report(str(folder))
    assert _page_keys(page) == finished
    text = page.read_text()
    assert 'id="partial"' in text and "1 record line(s) could not be read" in text


def test_report_without_results_names_the_option_as_typed(capsys):
    status, err = ldce_in_process(capsys, "report")
    assert status == 2 and "required: --results" in err and len(err.strip().splitlines()) == 1, err


def test_report_of_a_folder_that_is_no_results_folder_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    for folder, says in ((tmp_path, "is not an ldce results folder"), (tmp_path / "missing", "is not a folder")):
        status, err = ldce_in_process(capsys, "report", "--results", str(folder))
        assert status != 0 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "report.html").exists()


def test_the_callback_writes_the_page_of_the_folder_unless_switched_off(run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("report*"))
    rank_zero = SimpleNamespace(is_global_zero=True)
    RunReport(str(folder), enabled=False).on_predict_end(rank_zero, None)
    assert not (folder / "report.html").exists()
    RunReport(str(folder)).on_predict_end(rank_zero, None)
    assert _page_keys(folder / "report.html") == sorted(r["key"] for r in _records(run))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the page cannot be checked in a browser")
def test_the_status_filter_takes_the_words_the_page_shows_and_says_when_nothing_matches(run, tmp_path):
    """``?status=not flipped`` (the label) filters like ``not_flipped``; a filter that leaves no row shows
    the "nothing matches" line, one that leaves rows hides it."""
    outcomes = [_outcome(r) for r in _records(run)]
    with Browser(tmp_path / "profile") as browser:
        for name, label in OUTCOME_LABELS.items():
            for spelling in {label, name, label.upper()}:
                browser.open(f"{(run / 'report.html').resolve().as_uri()}?status={spelling.replace(' ', '%20')}")
                shown = browser.evaluate(f"{VISIBLE}.map(r => r.dataset.status)")
                assert shown == [name] * outcomes.count(name), spelling
                nothing = browser.evaluate("document.getElementById('nothing').hidden")
                assert nothing == bool(shown), f"{spelling}: the nothing-matches line shows exactly when no row does"


def _explained(folder: Path) -> Path:
    """``ldce explain`` of two image files, one with a name that its key cannot keep."""
    photos = folder / "photos"
    photos.mkdir()
    for i, name in enumerate(["日本 palette.png", "photo 1.png"]):
        (photos / name).write_bytes(png(i))
    config = tiny_config(folder, "unused.tar", class_names=[f"class {i}" for i in range(10)])
    out = folder / "out"
    ldce_here("explain", str(photos), "--config", str(config), "--target", "2", "--output_dir", str(out), "-q")
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the page cannot be checked in a browser")
def test_each_input_shows_the_file_it_came_from_and_the_text_filter_finds_it(tmp_path):
    out = _explained(tmp_path)
    with Browser(tmp_path / "profile") as browser:
        browser.open((out / "report.html").resolve().as_uri() + "?q=日本")
        shown = browser.evaluate(f"{VISIBLE}.map(r => r.querySelector('td.key .origin').innerText)")
        assert shown == [str(tmp_path / "photos" / "日本 palette.png")]


def _captions(page: Path) -> list[list[tuple[str, str]]]:
    """Per done row of the page: its pictures' (caption, placeholder text or "")."""

    class Figures(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[tuple[str, str]]] = []
            self.tag, self.placeholder = "", ""

        def handle_starttag(self, tag: str, attrs: list) -> None:
            found = dict(attrs)
            if tag == "div" and found.get("class") == "strip":
                self.rows.append([])
            self.tag = "placeholder" if "placeholder" in (found.get("class") or "") else tag

        def handle_data(self, data: str) -> None:
            if not data.strip():
                return
            if self.tag == "placeholder":
                self.placeholder = data.strip()
            elif self.tag in ("figcaption", "a") and self.rows:
                self.rows[-1].append((data.strip().rstrip(" ↗"), self.placeholder))
                self.placeholder = ""
            self.tag = ""

    parser = Figures()
    parser.feed(page.read_text())
    return parser.rows


def test_a_missing_or_corrupt_picture_is_a_placeholder_in_its_own_column(run, tmp_path):
    """A deleted counterfactual and a corrupt original keep every row's columns in the same order, each
    shown as a placeholder saying why (no broken image), and the rest of the row as it was."""
    folder = tmp_path / "damaged"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("report*"))
    (folder / "counterfactual" / "s001.png").unlink()
    (folder / "original" / "s002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    done = [key for key in _page_keys(write_report(str(folder))) if key != "broken"]
    rows = dict(zip(done, _captions(folder / "report.html"), strict=True))
    columns = {key: [caption for caption, _ in row] for key, row in rows.items()}
    assert all(c == columns["s000"] for c in columns.values()), "every done row has the same columns"
    assert columns["s000"][:4] == ["original", "counterfactual", "difference", "consensus"]
    placeholders = {key: [(c, p) for c, p in row if p] for key, row in rows.items()}
    assert placeholders == {
        "s000": [],
        "s001": [("counterfactual", "missing"), ("difference", "missing")],
        "s002": [("original", "unreadable"), ("difference", "missing")],
        "s003": [],
        "s004": [],
    }


def test_a_summary_without_its_records_warns_that_the_records_are_missing(run, tmp_path):
    folder = tmp_path / "no_records"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("report*", "records*"))
    text = " ".join(write_report(str(folder)).read_text().split())
    assert 'id="missing-records"' in text and "summary.json counts 5 done inputs in this folder, but only 0" in text
    assert 'id="missing-records"' not in write_report(str(run)).read_text()


def test_an_inputs_origin_is_its_file_else_its_key_in_its_shard_else_the_shard_that_failed():
    facts = {"source": 1, "target": 2, "flipped": True, "target_confidence": 0.9, "l1": 1.0, "l2": 1.0}
    done = Record("a@1", "done", 0.0, RecordFiles("o.png", "c.png"), shard="/data/shard-1.tar", **facts)
    assert origin(replace(done, meta={"path": "photos/日本 palette.png"})) == "photos/日本 palette.png"
    assert origin(replace(done, original_key="a")) == "a in shard-1.tar"
    assert origin(done) is None, "a done input of a shard, under its own key: the key says it"
    assert origin(Record("b", "failed", 0.0, reason="cut", shard="/data/shard-1.tar")) == "/data/shard-1.tar"
