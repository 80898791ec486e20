# model-gate as a Docker container action: `gate action` reads INPUT_* and the event.
# Two stages on the same base: the first (stage 0) builds the venv and cuts what the gate
# never runs; the last copies only that venv and adds git. docs/image.md has the figures.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/gate/bin:$PATH

# binutils for `strip` (this stage only).
# Debian packages are not pinned (DL3008): bookworm's archive carries only the current
# version of a package, so a pin breaks the build at the next point or security release;
# stable's policy (fixes only) is what keeps these steady. The Python stack is pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/gate

WORKDIR /opt/gate/src

# Dependencies first: this layer changes only with the pinned lock, not with the source.
# In the same layer, drop what no gate code path loads (what and why: docs/image.md):
#  - TensorFlow's C++ headers and XLA AOT sources (for building custom ops), static libs;
#  - the test suites of numpy, scipy and h5py;
#  - LiteRT's WebGPU accelerator and NPU vendor plugins (CompiledModel only; the gate
#    runs the CPU Interpreter);
#  - the symbol tables of TensorFlow's and LiteRT's shared libraries (strip --strip-unneeded
#    keeps the dynamic symbols the loader needs). Only those two: numpy, scipy and h5py
#    are auditwheel-repaired (patchelf) and stripping them breaks loading ("ELF load
#    command address/offset not page-aligned").
# Bytecode is compiled hash-based (unchecked-hash): mtime-stamped .pyc files go stale when
# COPY --from rounds the sources' mtimes, and every import then recompiles (measured:
# 1,306 stale modules, `import tensorflow` 1.6x slower).
COPY requirements/action.txt requirements/action.txt
RUN pip install --no-cache-dir --no-compile --requirement requirements/action.txt \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/tensorflow/include" "$site/tensorflow/xla_aot_runtime_src" \
              "$site/ai_edge_litert/libLiteRtWebGpuAccelerator.so" "$site/ai_edge_litert/vendors" \
    && find "$site/numpy" "$site/scipy" "$site/h5py" -depth -type d -name tests -exec rm -rf {} + \
    && find /opt/gate -name '*.a' -type f -delete \
    && find "$site/tensorflow" "$site/ai_edge_litert" -type f -name '*.so*' -exec strip --strip-unneeded {} + \
    && find /opt/gate -depth -type d -name __pycache__ -exec rm -rf {} + \
    && python -m compileall -q -j 0 --invalidation-mode unchecked-hash "$site" >/dev/null

COPY pyproject.toml README.md ./
COPY policies/ policies/
COPY gate/ gate/
# libclang is a TensorFlow requirement used only by TF's own build tooling (nothing
# imports `clang`); pip is not needed once the venv is complete. Both go after the last
# `pip install`, which would otherwise put libclang back.
RUN pip install --no-cache-dir --no-compile . \
    && python -m pip uninstall --yes libclang pip \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && python -m compileall -q --invalidation-mode unchecked-hash "$site/gate" \
    && gate --version \
    && rm -rf /opt/gate/src

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/gate/bin:$PATH

# git: the base-branch comparison (worktree, merge-base, `fetch --depth=1 origin SHA` in
# shallow checkouts, show). HTTPS fetches go through libcurl and need the CA bundle;
# no ssh client: actions/checkout's remote is https. The workspace is mounted owned by the
# runner's uid, not the container's: let git work there and in checkouts below it. The
# container is single-purpose, so trusting every directory costs nothing.
# dpkg skips docs, man pages and translations (copyright files stay). Not pinned: see
# DL3008 above.
# hadolint ignore=DL3008
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/locale/*' \
        > /etc/dpkg/dpkg.cfg.d/model-gate-nodoc \
    && apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && printf '[safe]\n\tdirectory = *\n' > /etc/gitconfig \
    && git --version

COPY --from=0 /opt/gate /opt/gate
# Prove the cut venv still loads everything the gate imports (a broken strip or a removed
# module fails the build here, not in a user's job); Keras leaves ~/.keras behind.
RUN gate --version \
    && TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 python -c "import tensorflow, tf_keras, keras, \
tensorflow_model_optimization, ai_edge_litert.interpreter, litert_quantizer.quantizer, h5py, scipy.stats, \
numpy, pydantic, rich, jinja2, requests, click, yaml" \
    && rm -rf "$HOME/.keras"

ENTRYPOINT ["/opt/gate/bin/gate", "action"]
