"""MkDocs hooks: pages generated from the code, and mermaid served from the site itself.

* ``<!-- generated:cli -->`` becomes the reference of the ``sentiment`` Typer app (the same text
  ``typer sentiment_hf.cli utils docs`` prints), so the page follows every new command or option.
* ``<!-- generated:recipe -->`` becomes tables of the recipe schema (sections, keys, types,
  defaults) read from the dataclasses in :mod:`sentiment_hf.config.recipe`.
* ``assets/javascripts/mermaid.min.js`` is added from the locked ``mermaidx`` package (the
  official mermaid 11 bundle). mkdocs-material only fetches mermaid from a CDN when no
  ``mermaid`` global exists, so the site renders diagrams with no network.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

MERMAID_DEST = "assets/javascripts/mermaid.min.js"
CLI_MARKER = "<!-- generated:cli -->"
RECIPE_MARKER = "<!-- generated:recipe -->"


def mermaid_source() -> Path:
    """The mermaid browser bundle shipped inside the mermaidx wheel."""
    import mermaidx

    path = Path(mermaidx.__file__).parent / "assets" / "mermaid.js"
    if not path.is_file():
        raise FileNotFoundError(f"mermaid bundle missing from mermaidx: {path}")
    return path


def on_files(files: Files, config: Any) -> Files:
    """Serve mermaid from the site (no CDN)."""
    files.append(File.generated(config, MERMAID_DEST, abs_src_path=str(mermaid_source())))
    return files


def cli_markdown() -> str:
    """Markdown reference of every ``sentiment`` command, as Typer's docs generator writes it."""
    import typer.main
    from typer.cli import get_docs_for_click

    from sentiment_hf.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="sentiment")
    return get_docs_for_click(obj=command, ctx=ctx, name="sentiment", indent=1)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "(section)"
    return f"`{value!r}`".replace("|", "\\|")


def _dataclasses_in(tp: Any) -> list[type]:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return [tp]
    found: list[type] = []
    for arg in typing.get_args(tp):
        found += _dataclasses_in(arg)
    return found


def _table(cls: type) -> str:
    hints = typing.get_type_hints(cls)
    rows = ["| key | type | default |", "| --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        type_name = _type_name(hints[f.name]).replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{type_name}` | {_default(f)} |")
    return "\n".join(rows)


def recipe_markdown() -> str:
    """Tables of every recipe section, from the schema dataclasses."""
    from sentiment_hf.config.recipe import PROJECT_TRAINING_KEYS, TRAINING_DEFAULTS, Recipe

    def doc(cls: type) -> str:
        return " ".join((cls.__doc__ or "").split())

    hints = typing.get_type_hints(Recipe)
    out = ["### Top level", "", doc(Recipe), "", _table(Recipe), ""]
    seen: set[type] = set()
    queue = [(f.name, hints[f.name]) for f in dataclasses.fields(Recipe)]
    while queue:
        name, tp = queue.pop(0)
        if name == "training":
            out += [
                "### `training`",
                "",
                "Any `transformers.TrainingArguments` field (an unknown key is an error). "
                "The project's defaults, which a recipe overrides:",
                "",
                "| key | default |",
                "| --- | --- |",
                *[f"| `{k}` | `{v!r}` |" for k, v in TRAINING_DEFAULTS.items()],
                "",
                "Keys the project adds to `training` (not TrainingArguments fields):",
                "",
                "| key | what it does |",
                "| --- | --- |",
                *[f"| `{k}` | {v} |" for k, v in PROJECT_TRAINING_KEYS.items()],
                "",
            ]
            continue
        for cls in _dataclasses_in(tp):
            if cls in seen:
                continue
            seen.add(cls)
            out += [f"### `{name}` ({cls.__name__})", "", doc(cls), "", _table(cls), ""]
            sub = typing.get_type_hints(cls)
            queue += [(f"{name}.{f.name}", sub[f.name]) for f in dataclasses.fields(cls)]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Fill the generated sections."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    if RECIPE_MARKER in markdown:
        markdown = markdown.replace(RECIPE_MARKER, recipe_markdown())
    return markdown
