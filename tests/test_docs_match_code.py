"""Where a user doc states a number or a default that the code also states, the two agree.

Each test reads the Markdown as written (no site build) and the value from the code that
decides it: the recipe schema and recipes/base.yaml, the CLI's option defaults, the server's
settings and metrics, the drift thresholds, the alert rules, the torchrun test's tolerances.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
BASE_YAML = REPO / "recipes" / "base.yaml"
#: The pages a user reads: the README and the site (results.md records past measurements and
#: their commands, which name the ports and paths of those runs, so only some checks read it).
USER_DOCS = [README, REPO / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def base_yaml() -> dict[str, Any]:
    return yaml.safe_load(text(BASE_YAML))


# ---------------------------------------------------------------------------------------------
# README's recipe table


def _parens(cell: str, start: int) -> str:
    """The text inside the parentheses that open at ``cell[start]`` (nested ones kept)."""
    depth = 0
    for i in range(start, len(cell)):
        depth += {"(": 1, ")": -1}.get(cell[i], 0)
        if depth == 0:
            return cell[start + 1 : i]
    raise AssertionError(f"unbalanced parentheses after {cell[start - 30 : start]!r}")


def _literal(raw: str) -> Any:
    """A value as the README writes it: `string`, null, true/false, [], or a number."""
    raw = raw.strip()
    if raw.startswith("`") and raw.endswith("`"):
        return raw[1:-1]
    words = {"null": None, "true": True, "false": False, "[]": []}
    if raw in words:
        return words[raw]
    try:
        return float(raw)
    except ValueError:
        return _NOT_A_VALUE


_NOT_A_VALUE = object()


def readme_recipe_rows() -> dict[str, dict[str, tuple[Any, Any]]]:
    """``{section: {key: (default, base.yaml value or _NOT_A_VALUE)}}`` from the README table.

    Each key is written ``\\`key\\` (DEFAULT[: why][; base.yaml: VALUE])``."""
    body = text(README)
    table = body[body.index("| section | keys (default) |") :].split("\n\n", 1)[0]
    rows: dict[str, dict[str, tuple[Any, Any]]] = {}
    for line in table.splitlines()[2:]:
        section_cell, keys_cell = (c.strip() for c in line.strip("|").split("|", 1))
        section = section_cell.strip("`")
        found: dict[str, tuple[Any, Any]] = {}
        for match in re.finditer(r"`([a-z_][a-z0-9_.]*)` \(", keys_cell):
            inside = _parens(keys_cell, match.end() - 1)
            head = re.match(r"(`[^`]*`|[^:;]+)", inside)
            default = _literal(head.group(1)) if head else _NOT_A_VALUE
            base = re.search(r"base\.yaml: (`[^`]*`|[^;)]+)", inside)
            found[match.group(1)] = (default, _literal(base.group(1)) if base else _NOT_A_VALUE)
        rows[section] = found
    return rows


def _fields(cls: type, prefix: str = "") -> dict[str, tuple[Any, bool]]:
    """``{dotted key: (default, is a nested section)}`` of a recipe dataclass, recursively."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[Any, bool]] = {}
    for f in dataclasses.fields(cls):
        missing = f.default is dataclasses.MISSING
        default = f.default_factory() if missing else f.default  # type: ignore[misc]
        nested = dataclasses.is_dataclass(hints[f.name])
        out[prefix + f.name] = (default, nested)
        if nested:
            out |= _fields(hints[f.name], f"{prefix}{f.name}.")
    return out


def _at(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _NOT_A_VALUE
        tree = tree[part]
    return tree


SCHEMA_SECTIONS = ("model", "data", "early_stopping", "tracking", "policy")


def test_readme_recipe_table_lists_every_key_with_the_schema_default() -> None:
    from sentiment_hf.config.recipe import Recipe

    rows = readme_recipe_rows()
    hints = typing.get_type_hints(Recipe)
    assert rows["name"]["name"][0] == Recipe().name
    for section in SCHEMA_SECTIONS:
        for key, (default, nested) in _fields(hints[section]).items():
            assert key in rows[section], f"README's recipe table leaves out {section}.{key}"
            if nested:
                continue
            stated = rows[section][key][0]
            assert stated is not _NOT_A_VALUE, f"{section}.{key}: no default stated"
            assert stated == default, f"README says {section}.{key} ({stated!r}), code {default!r}"
        extra = set(rows[section]) - set(_fields(hints[section]))
        assert not extra, f"README's {section} row names keys the schema lacks: {extra}"


def test_readme_training_defaults_are_the_project_defaults() -> None:
    from transformers import TrainingArguments

    from sentiment_hf.config.recipe import PROJECT_TRAINING_KEYS, TRAINING_DEFAULTS

    stated = readme_recipe_rows()["training"]
    args = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    for key in (*TRAINING_DEFAULTS, *PROJECT_TRAINING_KEYS):
        assert key in stated, f"README's training row leaves out {key}"
    for key, (default, _) in stated.items():
        code = TRAINING_DEFAULTS.get(key, None if key in PROJECT_TRAINING_KEYS else args.get(key))
        assert default == code, f"README says training.{key} ({default!r}), code {code!r}"


def test_readme_recipe_table_says_where_base_yaml_differs() -> None:
    """Every value base.yaml sets otherwise than the default is named beside it, and every
    `base.yaml: X` the README states is what base.yaml says."""
    from transformers import TrainingArguments

    from sentiment_hf.config.recipe import TRAINING_DEFAULTS, Recipe

    rows, base = readme_recipe_rows(), base_yaml()
    hints = typing.get_type_hints(Recipe)
    for section in SCHEMA_SECTIONS:
        for key, (default, nested) in _fields(hints[section]).items():
            shipped = _at(base.get(section) or {}, key)
            stated = rows[section][key][1]
            if nested:
                continue
            if shipped is not _NOT_A_VALUE and shipped != default:
                assert stated == shipped, f"README: {section}.{key} is {shipped!r} in base.yaml"
            else:
                assert stated is _NOT_A_VALUE, f"README: base.yaml does not set {section}.{key}"
    args = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    for key, shipped in base["training"].items():
        default = TRAINING_DEFAULTS.get(key, args.get(key))
        if shipped != default:
            assert rows["training"].get(key, (0, _NOT_A_VALUE))[1] == shipped, f"training.{key}"


# ---------------------------------------------------------------------------------------------
# Numbers the README quotes from elsewhere


def test_readme_accuracy_is_the_one_in_results() -> None:
    readme, results = text(README), text(DOCS / "results.md")
    block = readme[readme.index("## What it reaches") :].split("\n## ", 1)[0]
    assert "**84.8 % accuracy**" in block and "82.6\u201387.0 %" in block
    row = re.search(r"\| \*\*fine-tuned, shipped default \(seed 42\)\*\* \|[^\n]*", results)
    assert row and "**84.8** [82.6, 87.0] | 84.8 |" in row.group(0)
    assert "83.96 % ± 0.77" in block and "**0.8396 ± 0.0077**" in results
    assert "test ECE 0.025" in block and "| ECE (10 bins) | 0.1220 |" in results
    assert re.search(r"\| ECE \(10 bins\) \| 0\.1220 \| [^|]+ \| \*\*0\.0253\*\* \|", results)
    assert "0.122\nbefore" in block or "0.122 before" in block


def test_torchrun_tolerances_in_docs_are_the_tests() -> None:
    from test_training import test_torchrun_two_processes_match_one_process as test

    source = inspect.getsource(test)
    (losses,) = set(re.findall(r"approx\([^)]*abs=([0-9.e-]+)\)", source))
    (weights,) = re.findall(r"max\(drift\.values\(\)\) < ([0-9.e-]+)", source)
    readme = " ".join(text(README).split())
    assert f"losses agree within {losses}" in readme
    assert f"final weights within {weights}" in readme
    results = " ".join(text(DOCS / "results.md").split())
    assert f"losses agree within {losses}" in results
    assert f"the test allows {weights}" in results


# ---------------------------------------------------------------------------------------------
# Calibration objective


def test_calibration_objective_in_docs_and_help_is_base_yaml_and_the_schema() -> None:
    from typer.testing import CliRunner

    from sentiment_hf.cli import app
    from sentiment_hf.config.recipe import PolicyConfig

    shipped, default = base_yaml()["policy"]["objective"], PolicyConfig().objective
    assert shipped != default  # the docs must say both
    stated = [
        (path.name, value)
        for path in [*USER_DOCS, REPO / "recipes" / "base.yaml"]
        for value in re.findall(r"policy\.objective: (\w+)", text(path))
    ]
    assert stated and {value for _, value in stated} == {shipped}, stated
    trust = " ".join(text(DOCS / "trust.md").split())
    assert f"a recipe that leaves the key out gets `{default}`" in trust
    result = CliRunner().invoke(app, ["calibrate", "--help"], env={"COLUMNS": "400"})
    helptext = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    assert f"({shipped} in recipes/base.yaml; {default} when a recipe leaves it out)" in helptext
    assert "(temperature scaling)" not in helptext  # both objectives fit a temperature


# ---------------------------------------------------------------------------------------------
# Names of the library


def _resolve(dotted: str) -> Any:
    """The object a dotted name in the docs names: an attribute, or a module of the package
    imported by its path (so the answer does not depend on what other tests imported)."""
    import importlib

    import sentiment_hf

    obj: Any = sentiment_hf
    parts = dotted.split(".")
    for i, part in enumerate(parts[1:], start=2):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ModuleNotFoundError as exc:
                raise AttributeError(dotted) from exc
    return obj


def test_every_sentiment_hf_name_in_the_docs_exists() -> None:
    names = set()
    for path in USER_DOCS:
        page = text(path)
        names |= {(path.name, n) for n in re.findall(r"\bsentiment_hf(?:\.[A-Za-z_]\w*)+", page)}
        if "import sentiment_hf as s" in page:
            names |= {(path.name, f"sentiment_hf.{n}") for n in re.findall(r"\bs\.(\w+)\(", page)}
    missing = []
    for where, name in sorted(names):
        try:
            _resolve(name)
        except AttributeError:
            missing.append(f"{where}: {name}")
    assert not missing, missing


def test_architecture_stage_entries_are_callables() -> None:
    page = text(DOCS / "architecture.md")
    table = page[page.index("| stage | command | library entry | writes |") :].split("\n\n")[0]
    entries = [line.split("|")[3].strip().strip("`") for line in table.splitlines()[2:]]
    assert len(entries) >= 10
    for entry in entries:
        assert callable(_resolve(entry)), entry


def test_docs_name_modules_and_commands_that_exist() -> None:
    cli = text(DOCS / "cli.md")
    assert "sentiment_hf/cli.py" not in cli and (REPO / "sentiment_hf" / "cli").is_dir()
    for path in USER_DOCS:
        for module in re.findall(r"`(sentiment_hf/[\w/]+\.py)`", text(path)):
            assert (REPO / module).is_file(), f"{path.name}: {module}"
    index = text(DOCS / "index.md")
    for line in re.findall(r"sentiment export [^\n]*", index):
        assert "int8" not in line or "--quantize int8" in line, line


# ---------------------------------------------------------------------------------------------
# The server: port, limits, metrics


def _serve_option_defaults() -> dict[str, Any]:
    import typer.main

    from sentiment_hf.cli import app

    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {opt: p.default for p in command.params for opt in p.opts if opt.startswith("--")}


def test_serve_port_is_the_cli_default_everywhere() -> None:
    port = _serve_option_defaults()["--port"]
    pages = [p for p in USER_DOCS if p.name != "results.md"]
    for path in pages:
        page = text(path)
        for found in re.findall(r"--port (\d+)|(?:localhost|127\.0\.0\.1):(\d+)", page):
            assert int(found[0] or found[1]) == port, f"{path.name} names port {found}"
    makefile = text(REPO / "Makefile")
    assert re.search(r"^PORT\s+\?= (\d+)$", makefile, re.M).group(1) == str(port)
    dockerfile = text(REPO / "Dockerfile")
    assert re.findall(r"EXPOSE (\d+)", dockerfile) == [str(port)]
    assert set(re.findall(r"127\.0\.0\.1:(\d+)|\"--port\", \"(\d+)\"", dockerfile)) <= {
        (str(port), ""),
        ("", str(port)),
    }
    cloudrun = text(REPO / "cloud" / "cloudrun-serve.yaml")
    assert set(re.findall(r"(?:containerPort|port): (\d+)", cloudrun)) == {str(port)}
    prometheus = yaml.safe_load(text(REPO / "monitoring" / "prometheus.yml"))
    (target,) = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert target.endswith(f":{port}")


def _number(cell: str) -> Any:
    cell = cell.strip().strip("`")
    try:
        return float(cell.replace(",", "").split()[0])
    except (ValueError, IndexError):
        return cell


def test_http_api_page_states_the_servers_defaults_and_metrics() -> None:
    from sentiment_hf.serve.config import ServeConfig
    from sentiment_hf.serve.metrics import ServeMetrics

    page = text(DOCS / "http_api.md")
    defaults = _serve_option_defaults()
    table = page[page.index("| option of `sentiment serve` |") :].split("\n\n")[0]
    checked = 0
    for line in table.splitlines()[2:]:
        options_cell, default_cell = line.strip("|").split("|")[:2]
        options = re.findall(r"`(--[a-z-]+)`", options_cell)
        values = (
            [v.strip() for v in default_cell.split(",")] if "," in options_cell else [default_cell]
        )
        if len(options) != len(values) or "/" in options_cell:
            continue
        for option, value in zip(options, values, strict=True):
            code = defaults[option]
            if isinstance(code, (int, float)) and not isinstance(code, bool):
                stated = _number(value)
                assert stated == code, f"{option}: docs {value.strip()!r}, code {code!r}"
                checked += 1
            elif isinstance(code, str):
                assert value.strip().strip("`") == code, f"{option}: docs {value!r}, code {code!r}"
                checked += 1
    assert checked >= 7
    config = ServeConfig(model_dir=Path("run"))
    body = " ".join(page[page.index("## `POST /predict`") :].split("\n## ")[0].split())
    assert f"`--max-text-chars` characters ({config.max_text_chars:,})" in body
    assert f"`--max-texts-per-request` items ({config.max_texts_per_request})" in body
    assert f"`--max-body-bytes` ({config.max_body_bytes:,} bytes)" in body
    from sentiment_hf.longtext import LongTextConfig

    assert f"({LongTextConfig().max_windows} by default)" in body
    documented = set(re.findall(r"\| `(sentiment_[a-z_]+)(?:\{[^}]*\})?` \|", page))
    exposed = {m.name for m in ServeMetrics().registry.collect()}
    counters = {m.name for m in ServeMetrics().registry.collect() if m.type == "counter"}
    exposed = {f"{n}_total" if n in counters else n for n in exposed}
    exposed |= {"sentiment_drift_detected", "sentiment_drift_report_timestamp_seconds"}
    assert documented == exposed


# ---------------------------------------------------------------------------------------------
# Drift report and alert rules


def test_monitoring_page_states_the_drift_defaults() -> None:
    from sentiment_hf.monitoring import DriftConfig, DriftThresholds

    page = " ".join(text(DOCS / "monitoring.md").split())
    th, cfg = DriftThresholds(), DriftConfig(model_dir=Path("run"), requests="r.db")
    assert f"`--max-requests`, {cfg.max_requests:,}" in page
    assert f"`--min-requests` ({cfg.min_requests})" in page
    assert f"`--reference-size` ({cfg.reference_size:,})" in page
    assert f"`--alpha` ({th.alpha:g})" in page
    assert f"KS statistic ≥ {th.min_ks:g} (`--min-ks`)" in page
    assert f"≥ {100 * th.oov_delta:g} percentage points (`--oov-delta {th.oov_delta:g}`)" in page
    assert f"≥ {100 * th.label_shift:g} percentage points (`--label-shift {th.label_shift:g}`)" in (
        page
    )
    assert f"{cfg.embedding_sample} texts a side" in page
    assert f"{cfg.permutations} permutations (`--permutations`)" in page
    assert f"1/{cfg.permutations + 1}" in page
    assert page.count(f"p < {th.alpha:g}") >= 5


def test_monitoring_page_states_each_alert_rule_as_alerts_yml_does() -> None:
    page = text(DOCS / "monitoring.md")
    rules = yaml.safe_load(text(REPO / "monitoring" / "alerts.yml"))
    alerts = [r for group in rules["groups"] for r in group["rules"] if "alert" in r]
    records = [r["record"] for group in rules["groups"] for r in group["rules"] if "record" in r]
    for record in records:
        assert f"| `{record}` |" in page, record
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^\| `(Sentiment\w+)` \|[^\n]*", page, re.MULTILINE)
    }
    assert set(rows) == {a["alert"] for a in alerts}
    for alert in alerts:
        cells = [c.strip() for c in rows[alert["alert"]].strip("|").split("|")]
        assert f"`{' '.join(alert['expr'].split())}`" in cells[1], alert["alert"]
        assert cells[2] == alert.get("for", "at once"), alert["alert"]
        assert cells[3] == alert["labels"]["severity"], alert["alert"]


# ---------------------------------------------------------------------------------------------
# No work log in user docs


WORK_LOG = [
    r"/work/",
    r"sentiment_cpu\.lock",
    r"\bCPU lock\b",
    r"\bthe lock\b(?! is `flock`)",
    r"\bissue \d+\b",
    r"\bother (?:engineers|helpers|agents)\b",
    r"\b(?:these|the|this) sessions?\b",
    r"\btoday's machine\b",
    r"\bdeadline\b",
    r"\bmy own\b",
    r"\b\d\d:\d\d(?:\u2013\d\d:\d\d)? UTC\b",
    r"\([0-2]\d:[0-5]\d\)",  # clock times
]
#: When something was measured is work log; a changelog's release dates are not.
DATES = r"\b20\d\d-\d\d-\d\d\b"


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: p.name)
def test_user_docs_hold_no_work_log(path: Path) -> None:
    page = text(path)
    rules = WORK_LOG if path.name == "CHANGELOG.md" else [*WORK_LOG, DATES]
    found = [m.group(0) for rule in rules for m in re.finditer(rule, page, re.IGNORECASE)]
    assert not found, f"{path.name}: {found}"
