# syntax=docker/dockerfile:1.7
# sentiment_hf images, built from uv.lock. One image runs on CPU and GPU alike: the locked torch
# wheel is a CUDA build that falls back to the CPU; on a GPU host add `--gpus all`
# (NVIDIA Container Toolkit). Targets:
#   docker build --target train -t sentiment-hf:train .   # ENTRYPOINT sentiment, CMD train recipe
#   docker build --target serve -t sentiment-hf:serve .   # ENTRYPOINT sentiment, CMD serve on :8000
# `make docker-train` / `make docker-serve` build and run them with runs/ and data/ mounted.
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- builder: resolve nothing, install exactly the lock into /opt/venv ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when pyproject.toml or uv.lock change.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-editable --no-install-project
COPY pyproject.toml uv.lock README.md ./
COPY sentiment_hf ./sentiment_hf
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# ---- runtime: the venv, the recipes, a non-root user; no compiler, no uv, no source tree ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG APP_UID=10001
RUN groupadd --gid "${APP_UID}" app \
    && useradd --uid "${APP_UID}" --gid app --create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/home/app/.cache/huggingface \
    SENTIMENT_HF_CACHE=/home/app/.cache/sentiment_hf \
    WANDB_DIR=/app/runs
WORKDIR /app
COPY --chown=app:app recipes ./recipes
COPY --chown=app:app cloud/secret_env.py ./cloud/secret_env.py
# Caches are world-writable so `docker run --user "$(id -u):$(id -g)"` (make docker-*) works too.
RUN mkdir -p /app/runs /app/data /models /home/app/.cache \
    && chown "${APP_UID}:${APP_UID}" /app/runs /app/data /models /home/app/.cache \
    && chmod 1777 /home/app/.cache
USER ${APP_UID}:${APP_UID}
ENTRYPOINT ["sentiment"]
CMD ["--help"]

# ---- train: `docker run IMAGE` trains recipes/base.yaml into the mounted /app/runs ----
FROM runtime AS train
VOLUME ["/app/runs", "/app/data"]
CMD ["train", "recipes/base.yaml"]

# ---- serve: the FastAPI app on :8000 over the model mounted at /models/model ----
# (`--backend onnx` needs model.onnx in that folder: run `sentiment export MODEL` first.)
FROM runtime AS serve
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["serve", "/models/model", "--backend", "onnx", "--host", "0.0.0.0", "--port", "8000", \
     "--request-log", "/app/runs/requests.db"]
