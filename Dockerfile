# model-gate as a Docker container action: `gate action` reads INPUT_* and the event.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/gate/bin:$PATH

# The workspace is mounted owned by the runner's uid, not the container's: let any git
# (the base image may have one) work there and in checkouts below it. The container is
# single-purpose, so trusting every directory costs nothing.
RUN printf '[safe]\n\tdirectory = *\n' > /etc/gitconfig \
    && python3 -m venv /opt/gate

WORKDIR /opt/gate/src

# Dependencies first: this layer changes only with the pinned lock, not with the source.
COPY requirements/action.txt requirements/action.txt
RUN pip install --no-cache-dir --requirement requirements/action.txt

COPY pyproject.toml README.md ./
COPY policies/ policies/
COPY gate/ gate/
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info \
    && gate --version

ENTRYPOINT ["/opt/gate/bin/gate", "action"]
