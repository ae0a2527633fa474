"""The documentation site: strict build, generated references, no external resources, and the
mermaid diagram drawn in a real headless Chromium with every non-loopback request blocked."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

pytestmark = pytest.mark.linux_only  # Linux tools; run on the Linux CI legs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` into a temporary folder: any warning fails the build."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=REPO, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def text_of(html_path: Path) -> str:
    return re.sub(r"<[^>]+>", " ", html_path.read_text(encoding="utf-8"))


def test_every_page_is_built(site: Path) -> None:
    for page in ("index.html", "architecture/index.html", "recipes/index.html", "cli/index.html",
                 "api/index.html", "results/index.html", "operations/index.html",
                 "http_api/index.html", "web_page/index.html",
                 "monitoring/index.html"):  # fmt: skip
        assert (site / page).is_file(), page


def test_cli_reference_is_generated_from_the_typer_app(site: Path) -> None:
    import typer.main

    from sentiment_hf.cli import app

    page = text_of(site / "cli" / "index.html")
    assert "<!-- generated:cli -->" not in page
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert f"sentiment {name}" in page, name
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in page, f"sentiment {name} {opt}"


def _recipe_sections() -> list[tuple[str, type]]:
    """Every dataclass reachable from Recipe, with its dotted path (types resolved, since the
    schema module uses ``from __future__ import annotations``)."""
    from sentiment_hf.config.recipe import Recipe

    def dataclasses_in(tp) -> list[type]:
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return [tp]
        return [c for arg in typing.get_args(tp) for c in dataclasses_in(arg)]

    out, seen = [], set()
    queue = [(f.name, t) for f, t in zip(dataclasses.fields(Recipe), _hints(Recipe), strict=True)]
    while queue:
        name, tp = queue.pop(0)
        for cls in dataclasses_in(tp):
            if cls not in seen:
                seen.add(cls)
                out.append((name, cls))
                fields = dataclasses.fields(cls)
                queue += [(f"{name}.{f.name}", t) for f, t in zip(fields, _hints(cls), strict=True)]
    return out


def _hints(cls: type) -> list:
    hints = typing.get_type_hints(cls)
    return [hints[f.name] for f in dataclasses.fields(cls)]


def test_recipe_reference_is_generated_from_the_schema(site: Path) -> None:
    from sentiment_hf.config.recipe import TRAINING_DEFAULTS, Recipe

    page = text_of(site / "recipes" / "index.html")
    for section in dataclasses.fields(Recipe):
        assert section.name in page
    sections = _recipe_sections()
    assert {"model", "data", "policy", "sweep", "sweep.params"} <= {n for n, _ in sections}
    html = (site / "recipes" / "index.html").read_text(encoding="utf-8")
    chunks = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.split(r"<h[23]\b", html)]
    for name, cls in sections:  # each section has its own heading and table of all its fields
        heading = f"{name} ({cls.__name__})"
        found = [c for c in chunks if c.split(">", 1)[-1].strip().startswith(heading)]
        assert len(found) == 1, heading
        for f in dataclasses.fields(cls):
            assert f.name in found[0], f"{name}.{f.name}"
    for key in TRAINING_DEFAULTS:
        assert key in page
    from sentiment_hf.config.recipe import PROJECT_TRAINING_KEYS

    for key in PROJECT_TRAINING_KEYS:
        assert key in page, f"training.{key}"


def test_api_reference_documents_the_public_surface(site: Path) -> None:
    import sentiment_hf

    page = text_of(site / "api" / "index.html")
    for name in sentiment_hf.__all__:
        assert name in page, name


def test_no_external_font_script_or_stylesheet(site: Path) -> None:
    """Every resource a page loads is inside the site; links to other sites are fine."""
    resource = re.compile(
        r"<(?:script|img|source|iframe)\b[^>]*\bsrc=\"([^\"]+)\"|"
        r"<link\b[^>]*\bhref=\"([^\"]+)\"[^>]*>"
    )
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for match in resource.finditer(html):
            url = match.group(1) or match.group(2)
            if match.group(2) and re.search(r"rel=\"(canonical|alternate)\"", match.group(0)):
                continue
            assert not re.match(r"(https?:)?//", url), f"{page.relative_to(site)} loads {url}"
    for css in site.rglob("*.css"):
        assert not re.search(r"(url\(|@import)\s*['\"]?(https?:)?//", css.read_text()), css
    assert "fonts.googleapis" not in "".join(p.read_text() for p in site.rglob("*.html"))
    assert (site / "assets" / "javascripts" / "mermaid.min.js").stat().st_size > 1_000_000


@pytest.fixture(scope="module")
def served_site(site: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "no Chromium found (looked for " + ", ".join(BROWSERS) + "); install it with "
        "`apt-get install chromium`",
        pytrace=False,
    )


def test_mermaid_diagram_renders_offline_in_a_browser(served_site: str) -> None:
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=find_browser(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def route(r: object) -> None:
                if r.request.url.startswith(served_site + "/"):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{served_site}/architecture/")
            page.wait_for_function(
                "() => { const d = document.querySelector('div.mermaid');"
                " return d && d.getBoundingClientRect().height > 300 }",
                timeout=60_000,
            )
            assert page.evaluate("() => typeof window.mermaid.render") == "function"
            assert page.locator("pre.mermaid").count() == 0, "the source was replaced by a drawing"
        finally:
            browser.close()
    assert blocked == [], f"the page tried to reach the network: {blocked}"
    assert errors == []
