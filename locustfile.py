"""Load test of `sentiment serve`: single-text POST /predict requests.

Run through ``bash scripts/loadtest.sh MODEL_DIR [BACKEND]`` (``make loadtest``), which starts the
server on 127.0.0.1 and runs this file headless. Directly::

    locust -f locustfile.py --headless -u 8 -r 8 -t 60s --host http://127.0.0.1:8000

Environment:
    LOCUST_TEXTS          file with one review per line (default: the rt-polarity test split
                          when ../shared/data/rt-polarity exists, else built-in reviews)
    LOCUST_RATE_PER_USER  requests per second per user (constant throughput); 0 = no wait,
                          each user sends its next request as soon as the last one returns
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from locust import FastHttpUser, constant, constant_throughput, task

BUILTIN = [
    "a gorgeous, witty, seductive movie.",
    "the plot is nothing but boilerplate clichés from start to finish.",
    "effective but too-tepid biopic",
    "if you sometimes like to go to the movies to have fun, wasabi is a good place to start.",
    "emerges as something rare, an issue movie that's so honest and keenly observed.",
    "the film is strictly routine.",
    "offers that rare combination of entertainment and education.",
    "a sour little movie at its core; an exploration of the emptiness that underlay the "
    "relentless gaiety of the 1920's.",
    "it's a lovely film with lovely performances by buy and accorsi.",
    "too slow, too long and too little happens.",
]


def _texts() -> list[str]:
    path = os.environ.get("LOCUST_TEXTS")
    if path:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [line for line in lines if line.strip()] or BUILTIN
    here = Path(__file__).resolve().parent
    for base in (here, *here.parents):
        raw = base / "shared" / "data" / "rt-polarity"
        if (raw / "rt-polarity.pos").is_file():
            out = []
            for name in ("rt-polarity.pos", "rt-polarity.neg"):
                lines = (raw / name).read_bytes().decode("latin-1").split("\n")
                out += [line.strip() for line in lines[int(len(lines) * 0.9) :] if line.strip()]
            return out
    return BUILTIN


TEXTS = _texts()
RATE = float(os.environ.get("LOCUST_RATE_PER_USER", "25"))


class ReviewUser(FastHttpUser):
    """One client sending single-review predictions."""

    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)

    @task
    def predict_one(self) -> None:
        body = {"text": random.choice(TEXTS)}
        with self.client.post("/predict", json=body, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            try:
                pred = resp.json()["predictions"][0]
            except (ValueError, KeyError, IndexError):
                resp.failure("response is not the documented JSON")
                return
            if not 0.0 <= pred["score"] <= 1.0:
                resp.failure(f"score out of range: {pred['score']}")
