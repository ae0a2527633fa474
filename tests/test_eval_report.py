"""`sentiment eval`'s HTML report: self-contained, the JSON's numbers, escaped user text, and a
page that reads in a real browser (headless Chromium) on a laptop and on a phone."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from sentiment_hf.evaluation.report import Mistake, render_eval_report

CHROMIUM = "/usr/bin/chromium"
#: Laptop and phone (iPhone 12-15 CSS width) viewports.
VIEWPORTS = {"laptop": (1280, 800), "phone": (390, 844)}


def fake_explain(texts: list[str]) -> list[list[tuple[str, float]]]:
    """Word attributions of a deterministic shape: alternating sign, growing size."""
    return [
        [(word, (-1) ** i * (i + 1) / 10) for i, word in enumerate(text.split())] for text in texts
    ]


@pytest.fixture(scope="module")
def evaluated(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from sentiment_hf.evaluation.calibrate import fit_policy
    from sentiment_hf.evaluation.evaluate import evaluate_model

    run = tmp_path_factory.mktemp("eval-report") / "tiny"
    shutil.copytree(tiny_run, run)
    fit_policy(run)  # the page shows the fitted temperature
    return evaluate_model(run, split="test", explain=fake_explain)


@pytest.fixture(scope="module")
def page_html(evaluated: Any) -> str:
    return evaluated.report_path.read_text(encoding="utf-8")


def test_report_is_written_beside_the_json_and_self_contained(
    evaluated: Any, page_html: str
) -> None:
    assert evaluated.report_path == evaluated.metrics_path.parent / "test_report.html"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page_html, re.I)
    assert "<script" not in page_html.lower()
    assert "@import" not in page_html and "url(" not in page_html
    images = re.findall(r'<img [^>]*src="([^"]+)"', page_html)
    assert len(images) == 4 and all(src.startswith("data:image/png;base64,") for src in images)


def test_report_shows_the_json_metrics_with_their_intervals(evaluated: Any, page_html: str) -> None:
    metrics = json.loads(evaluated.metrics_path.read_text())
    for key in ("test_accuracy", "test_f1", "test_f1_macro"):
        value, (lo, hi) = metrics[key], metrics[f"{key}_ci95"]
        assert lo <= value <= hi
        assert f'data-value="{value}"' in page_html
        assert f'data-ci95="{lo},{hi}"' in page_html
        assert f"{value:.3f}" in page_html and f"{lo:.3f}&ndash;{hi:.3f}</span>" in page_html
    for name, row in metrics["test_per_class"].items():
        assert f"<td>{name}</td>" in page_html
        assert f"{row['f1']:.3f}" in page_html
    assert (
        sum(row["support"] for row in metrics["test_per_class"].values()) == metrics["test_samples"]
    )
    for key in ("ece", "ece_uncalibrated", "accuracy_at_80pct_coverage"):
        assert f"{metrics[f'test_{key}']:.3f}" in page_html
    temperature = json.loads((evaluated.metrics_path.parents[1] / "policy.json").read_text())
    assert f"T = {temperature['temperature']:.2f}" in page_html


def test_length_buckets_partition_the_inputs(evaluated: Any, page_html: str) -> None:
    metrics = json.loads(evaluated.metrics_path.read_text())
    buckets = metrics["test_accuracy_by_length"]
    assert sum(b["samples"] for b in buckets) == metrics["test_samples"] > 0
    assert [b["min"] for b in buckets] == sorted(b["min"] for b in buckets)
    shown = [int(n) for n in re.findall(r'data-samples="(\d+)"', page_html)]
    assert shown == [b["samples"] for b in buckets]
    assert evaluated.length_path.is_file()


def test_most_confident_mistakes_are_highlighted_by_the_explainer(
    evaluated: Any, page_html: str
) -> None:
    section = page_html.split('id="mistakes"', 1)[1]
    items = section.count("<li>")
    m = evaluated.metrics
    wrong = round(m["test_samples"] * (1 - m["test_accuracy"]))
    assert items == min(10, wrong)
    shown = [float(p) for p in re.findall(r"with p = (\d\.\d+)", section)]
    assert shown == sorted(shown, reverse=True)
    assert "rgba(46, 160, 67, 0.70)" in section or "rgba(207, 34, 46, 0.70)" in section


def test_user_text_is_escaped() -> None:
    mistake = Mistake(3, "<script>alert('x')</script> & more", "<b>pos</b>", "neg", 0.97)
    page = render_eval_report(
        "test",
        {"test_accuracy": 0.5, "test_samples": 1},
        ["neg", "<b>pos</b>"],
        {},
        [mistake],
        [{"min": 5, "max": 5, "samples": 1, "accuracy": 0.0}],
        title="run <i>",
    )
    assert "<script" not in page and "<b>pos" not in page and "run <i>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    highlighted = render_eval_report(
        "test", {}, ["neg", "pos"], {}, [mistake], [], attributions=[[("<img src=x>", 0.5)]]
    )
    assert "<img src=x>" not in highlighted and "&lt;img src=x&gt;" in highlighted
    with pytest.raises(ValueError, match="one per mistake"):
        render_eval_report("test", {}, ["neg", "pos"], {}, [mistake], [], attributions=[])


def test_each_task_writes_its_own_decision_and_calibration_notes() -> None:
    """The task picks its parts of the page: a binary threshold and a temperature, or
    per-label thresholds and a per-label calibration method; never the other task's."""
    from sentiment_hf.tasks.task import MULTI_LABEL_TASK, SINGLE_LABEL

    def page(task: Any, policy: dict[str, Any], labels: list[str]) -> str:
        return render_eval_report("test", {}, labels, {}, [], [], policy=policy, task=task)

    single = page(SINGLE_LABEL, {"temperature": 2.5, "threshold": 0.42}, ["neg", "pos"])
    assert "Binary threshold on p(pos): 0.42" in single
    assert "T = 2.50" in single and "Temperature scaling fitted" in single
    assert "per label" not in single.lower() and "A label is given" not in single
    unfitted = page(SINGLE_LABEL, {}, ["neg", "pos"])
    assert "Binary threshold" not in unfitted and "stores no temperature" in unfitted

    labels = ["acting", "plot"]
    policy = {"multi_label": True, "thresholds": [0.3, 0.65], "calibration": "platt"}
    multi = page(MULTI_LABEL_TASK, policy, labels)
    assert "A label is given when its probability reaches its threshold" in multi
    assert "acting 0.30, plot 0.65" in multi
    assert "per label: platt" in multi and "Per-label calibration (platt)" in multi
    assert "Binary threshold" not in multi and "T = " not in multi


def look(browser: Any, url: str, width: int, height: int, shot: Path) -> dict[str, Any]:
    """Open ``url`` at ``width`` x ``height``: what a reader would notice, and a screenshot."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    requested: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url, wait_until="load")
    seen = {
        "errors": errors,
        "requested": requested,
        "overflow": page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"),
        "images": page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.naturalWidth, i.getBoundingClientRect().right])"
        ),
    }
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    return seen


@pytest.mark.linux_only  # Debian's chromium
def test_report_reads_in_headless_chromium(evaluated: Any, tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    url = evaluated.report_path.resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        found = {
            name: look(browser, url, width, height, tmp_path / f"eval_report_{name}.png")
            for name, (width, height) in VIEWPORTS.items()
        }
        browser.close()
    for name, seen in found.items():
        scroll_width, inner_width = seen["overflow"]
        assert scroll_width <= inner_width, f"{name}: the page scrolls sideways"
        assert len(seen["images"]) == 4
        assert all(natural > 0 for natural, _ in seen["images"]), f"{name}: a broken image"
        assert all(right <= inner_width for _, right in seen["images"]), f"{name}: image cut"
        assert seen["errors"] == [], f"{name}: console errors {seen['errors']}"
        assert all(u.startswith(("file:", "data:")) for u in seen["requested"]), seen["requested"]
        assert (tmp_path / f"eval_report_{name}.png").stat().st_size > 10_000


def test_model_card_states_the_evaluated_trust_figures(evaluated: Any) -> None:
    from sentiment_hf.hub.card import build_model_card

    run = evaluated.metrics_path.parents[1]
    metrics = json.loads(evaluated.metrics_path.read_text())
    card = build_model_card(run, "someone/tiny")
    lo, hi = metrics["test_accuracy_ci95"]
    assert f"accuracy is {metrics['test_accuracy']:.4f}" in card
    assert f"(95 % bootstrap interval {lo:.4f} to {hi:.4f})" in card
    assert f"it is {metrics['test_accuracy_at_80pct_coverage']:.4f}." in card
    assert f"On the test split ({metrics['test_samples']} samples" in card
    # evaluated on other data: the card does not borrow those figures
    other = json.loads(evaluated.metrics_path.read_text())
    evaluated.metrics_path.write_text(json.dumps({**other, "data_source": "/elsewhere"}))
    try:
        assert "bootstrap interval" not in build_model_card(run, "someone/tiny")
    finally:
        evaluated.metrics_path.write_text(json.dumps(other))


def test_eval_with_explanations_loads_the_model_once(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """`sentiment eval --explain` scores and explains with one loaded model (it loaded two);
    the real loader runs, the spy only counts its calls."""
    from cli_inprocess import run_main

    from sentiment_hf import modeling

    calls: list[Path] = []
    real = modeling.load_trained

    def counting(path: Any, **kwargs: Any) -> Any:
        calls.append(Path(path))
        return real(path, **kwargs)

    monkeypatch.setattr(modeling, "load_trained", counting)
    args = ["eval", str(tiny_run), "--explain", "--output", str(tmp_path / "r")]
    done = run_main(args, capsys, monkeypatch)
    assert done.code == 0, done.stderr
    assert len(calls) == 1, calls
    page = (tmp_path / "r" / "test_report.html").read_text(encoding="utf-8")
    assert '<span class="w" style="background: rgba(' in page  # the mistakes were explained
