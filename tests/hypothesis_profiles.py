"""Hypothesis settings profiles for the suite; importing this module registers and loads one.

The profile is chosen by the environment variable ``HYPOTHESIS_PROFILE`` (default ``ci``):

* ``ci``: derandomized (every run tries the same examples, so a failure reproduces by rerunning
  the test), no example database, the reproduction blob printed with a failure.
* ``explore``: random examples, failures saved in ``.hypothesis/examples`` at the repository
  root (git-ignored) and replayed first on the next run; the blob printed too. For hunting new
  failures locally: ``HYPOTHESIS_PROFILE=explore uv run pytest tests/test_serve_fuzz.py``.

Neither has a deadline: the suite shares a busy machine, where one example's time says nothing.
A test's own ``@settings(...)`` overrides only the settings it names.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE_ENV = "HYPOTHESIS_PROFILE"
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / ".hypothesis" / "examples"

settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile(
    "explore",
    derandomize=False,
    database=DirectoryBasedExampleDatabase(str(EXAMPLES_DIR)),
    print_blob=True,
    deadline=None,
)
PROFILE = os.environ.get(PROFILE_ENV, "ci")
if PROFILE not in ("ci", "explore"):
    raise ValueError(f"{PROFILE_ENV}={PROFILE!r}: use ci (the default) or explore")
settings.load_profile(PROFILE)
