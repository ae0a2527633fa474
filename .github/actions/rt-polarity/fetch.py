"""Fetch rt-polarity.pos/.neg from the publisher's tarball into a folder and check their sha256.

Standard library only (runs on Linux, macOS and Windows runners). Files already present with the
right digest are kept; anything else is an error naming the file.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
SHA256 = {
    "rt-polarity.pos": "d79ef14009bbf87cd6be21f91c3ea1a3cbcb73b34dfb4231aef7bbcd7677abc4",
    "rt-polarity.neg": "4af43bf489620b498a0852c5a8c6a535155dec7985fdfea782b8f7756b957ccc",
}


def digest_ok(path: Path) -> bool:
    """True when ``path`` exists and has its published sha256."""
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[path.name]


def main(dest: str) -> int:
    """Fill ``dest``; exit 1 when a file is missing from the tarball or its digest differs."""
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    if all(digest_ok(folder / name) for name in SHA256):
        print(f"rt-polarity already in {folder}")
        return 0
    with urllib.request.urlopen(URL, timeout=60) as response:
        payload = response.read()
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
        for name in SHA256:
            try:
                member = archive.extractfile(f"rt-polaritydata/{name}")
            except KeyError:
                member = None
            if member is None:
                print(f"::error::{name} is not in {URL}")
                return 1
            (folder / name).write_bytes(member.read())
            if not digest_ok(folder / name):
                print(f"::error::{name} from {URL} does not have the expected sha256")
                return 1
    print(f"rt-polarity fetched into {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/rt-polarity"))
