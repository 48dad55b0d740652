"""``report.html``: one static page per results folder, written at the end of every run and by ``ldce report``;
checked in a real headless Chromium where one is installed."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from browser import CHROMIUM, Browser
from cli_helpers import good_sample, ldce_in_process, ldce_status, predict_args, tiny_config, write_shard
from PIL import Image

from ldce.callbacks.report import RunReport
from ldce.report import write_report

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
