# The mlbatch image: one image for Dataflow workers (--sdk_container_image), Vertex AI
# Pipelines tasks and Ray nodes (KubeRay), built by `make image` (deploy/cloudbuild.yaml).
#
# Base: Beam's own Python 3.11 SDK image at the Beam version pinned in requirements.lock,
# so Dataflow's worker entrypoint (/opt/apache/beam/boot) and its Python match the SDK
# that builds the jobs. Everything else is installed from the lock exactly: each pin with
# --no-deps into one virtual environment (nothing resolved at build time, nothing added),
# then this project, also with --no-deps.
#
# GPU variant (JAX CUDA plugin, CUDA libraries): --build-arg LOCK=requirements-gpu.lock.

ARG BEAM_IMAGE=apache/beam_python3.11_sdk:2.77.0
ARG LOCK=requirements.lock

# --- build: the environment, from the lock ------------------------------------------------
FROM ${BEAM_IMAGE} AS build
ARG LOCK
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN python -m pip install --no-cache-dir uv==0.13.9 \
    && python -m uv venv --python /usr/local/bin/python /opt/mlbatch-venv
COPY ${LOCK} /tmp/requirements.lock
RUN python -m uv pip install --no-cache --no-deps --python /opt/mlbatch-venv/bin/python \
        -r /tmp/requirements.lock \
    && python -m uv pip check --python /opt/mlbatch-venv/bin/python
COPY pyproject.toml setup.py README.md /src/mlbatch/
COPY mlbatch /src/mlbatch/mlbatch
COPY beam_jobs /src/mlbatch/beam_jobs
COPY ray_jobs /src/mlbatch/ray_jobs
COPY schemas /src/mlbatch/schemas
RUN python -m uv pip install --no-cache --no-deps --python /opt/mlbatch-venv/bin/python \
        /src/mlbatch

# --- runtime: Beam's image plus the environment and the repository -------------------------
FROM ${BEAM_IMAGE} AS runtime
# wget: KubeRay's default health probes call it inside Ray node containers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/mlbatch-venv /opt/mlbatch-venv
# Beam's boot would otherwise make a fresh virtualenv per worker and lose this one.
ENV VIRTUAL_ENV=/opt/mlbatch-venv \
    PATH=/opt/mlbatch-venv/bin:${PATH} \
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1 \
    PYTHONUNBUFFERED=1
# Login shells (KubeRay starts Ray with `bash -lc`) reset PATH in /etc/profile: keep the
# environment first there too.
RUN echo 'export PATH=/opt/mlbatch-venv/bin:$PATH' > /etc/profile.d/mlbatch-venv.sh
# The repository root: schemas/, pipelines/ and scripts/ are read from here; KFP tasks
# and Ray jobs (runtime_env working_dir ".") run in it.
WORKDIR /opt/mlbatch
COPY . /opt/mlbatch
ENTRYPOINT ["/opt/apache/beam/boot"]
