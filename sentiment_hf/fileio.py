"""Small file helpers shared by every stage: atomic writes and "is this a local path?"."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: Prefixes that mark a string as a filesystem path rather than a hub id.
PATH_PREFIXES = (".", "/", "~")


def looks_like_path(name: str) -> bool:
    """True when ``name`` is written as a path (``./x``, ``/x``, ``~/x``) or exists on disk."""
    return name.startswith(PATH_PREFIXES) or Path(name).expanduser().exists()


def current_umask() -> int:
    """The process's umask (from ``/proc`` on Linux; elsewhere set and put back at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_as_umask_allows(paths: Iterable[Path]) -> None:
    """Give ``paths`` the mode a plain ``open()`` would (``0o666 & ~umask``): writers that use
    private temporary files (safetensors: 0600) otherwise leave files only their owner reads."""
    mode = 0o666 & ~current_umask()
    for path in paths:
        os.chmod(path, mode)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it over ``path``.

    Readers see the old file or the whole new one, never half of it; the temporary name is
    per-process so concurrent writers never share it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, payload: Any, sort_keys: bool = True) -> Path:
    """Write JSON atomically (indented, keys sorted unless ``sort_keys`` is False, non-JSON
    values as strings)."""
    return write_text_atomic(
        path, json.dumps(payload, indent=2, sort_keys=sort_keys, default=str) + "\n"
    )


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
