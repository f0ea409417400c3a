# The action's container: the bodywork_action package and its runtime dependencies only (no MLflow,
# no test tools). GitHub builds this on every job that uses the action from source; releases publish
# it to ghcr.io so workflows can use `image: docker://ghcr.io/<owner>/deploy-action:<version>`.
#
# Pinned by version. To pin by digest as well (recommended for releases), resolve it with
#   docker buildx imagetools inspect python:3.12.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# and write the base as  python:3.12.11-slim-bookworm@sha256:<digest>.
FROM python:3.12.11-slim-bookworm

# Streamed, unbuffered logs; no .pyc files (the workspace is mounted read-write, so nothing should
# be written next to the user's code); no pip version check or cache in the image.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /opt/bodywork-action/
COPY bodywork_action /opt/bodywork-action/bodywork_action
COPY entrypoint.py /opt/bodywork-action/entrypoint.py

# Runtime dependencies only: the package without its [test] extra. The entry point imports the copy
# in /opt/bodywork-action (its own directory comes first on sys.path, so a user's repository can't
# shadow it); compiling that copy here saves the byte-compilation on every start.
RUN pip install /opt/bodywork-action \
    && python -m compileall -q /opt/bodywork-action/bodywork_action \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bodywork

# No USER instruction, on purpose. GitHub runs a container action as the image's user, and the files
# it mounts for GITHUB_OUTPUT / GITHUB_STEP_SUMMARY (/github/file_commands) and the workspace belong to
# the runner's user (uid 1001 on hosted runners): any other non-root uid gets "Permission denied" when
# writing outputs (actions/hello-world-docker-action#16, actions/runner-images#10915; issue-metrics and
# contributors went back to root for this reason). GitHub's Dockerfile support docs say the same:
# "Docker actions must be run by the default Docker user (root)". The action writes nothing into the
# workspace (the kubeconfig goes to the container's own /tmp), so no root-owned files are left behind.
# For the CLI outside Actions, run unprivileged:  docker run --user bodywork ... bodywork-action --help
ENTRYPOINT ["python", "-u", "/opt/bodywork-action/entrypoint.py"]
