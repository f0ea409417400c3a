# The action's container: the bodywork_action package and its runtime dependencies only (no MLflow,
# no test tools). GitHub builds this on every job that uses the action from source (Linux runners only);
# releases publish it to ghcr.io so workflows can use `uses: docker://ghcr.io/<owner>/deploy-action:<version>`.
#
# Reproducible: every dependency comes from requirements/*.txt, pinned with hashes and installed with
# --require-hashes --no-deps (wheels only), so a build resolves nothing from PyPI on the day.
#
# Pinned by version. Release builds pin the base by digest as well (.github/workflows/release.yml
# resolves it and passes --build-arg BASE=python:3.12.11-slim-bookworm@sha256:<digest>); by hand:
#   docker buildx imagetools inspect python:3.12.11-slim-bookworm --format '{{json .Manifest.Digest}}'
ARG BASE=python:3.12.11-slim-bookworm

# Build stage: a virtual environment in /opt/bodywork-action holding the locked dependencies and the
# package (one copy, byte-compiled), without pip, setuptools or any build leftover. kubernetes/aio
# (the asyncio client, 68 MB of the 160 MB this image once added) goes: nothing imports it or aiohttp
# outside it; tests/image run every command through the image.
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY requirements/action.txt requirements/build.txt /src/requirements/
RUN python -m venv --without-pip /opt/bodywork-action \
    && pip --python /opt/bodywork-action/bin/python install --quiet --require-hashes --no-deps \
       --only-binary :all: -r /src/requirements/action.txt -r /src/requirements/build.txt
COPY pyproject.toml README.md LICENSE entrypoint.py /src/
COPY bodywork_action /src/bodywork_action
RUN pip --python /opt/bodywork-action/bin/python install --quiet --no-deps --no-build-isolation \
       --no-compile /src \
    && pip --python /opt/bodywork-action/bin/python uninstall --quiet --yes setuptools wheel \
    && rm -rf /opt/bodywork-action/lib/python3*/site-packages/kubernetes/aio \
    && cp /src/entrypoint.py /opt/bodywork-action/entrypoint.py \
    && python -m compileall -q -j 0 /opt/bodywork-action/lib

# Final stage: the base plus that one directory. The entry point runs the venv's interpreter, so a
# user's repository (the working directory) can't shadow the package.
FROM ${BASE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/bodywork-action/bin:$PATH
COPY --from=build /opt/bodywork-action /opt/bodywork-action
RUN useradd --uid 10001 --no-create-home --no-log-init --shell /usr/sbin/nologin bodywork

# No USER instruction, on purpose. GitHub runs a container action as the image's user, and the files
# it mounts for GITHUB_OUTPUT / GITHUB_STEP_SUMMARY (/github/file_commands) and the workspace belong to
# the runner's user (uid 1001 on hosted runners): any other non-root uid gets "Permission denied" when
# writing outputs (actions/hello-world-docker-action#16, actions/runner-images#10915; issue-metrics and
# contributors went back to root for this reason). GitHub's Dockerfile support docs say the same:
# "Docker actions must be run by the default Docker user (root)". The action writes nothing into the
# workspace (the kubeconfig goes to the container's own /tmp), so no root-owned files are left behind.
#
# The command-line tool from this image (outside Actions), unprivileged; the entry point is the action,
# so the CLI needs --entrypoint (tests/image/test_build.py runs exactly this line):
#   docker run --rm --user bodywork --entrypoint bodywork-action IMAGE --help
ENTRYPOINT ["/opt/bodywork-action/bin/python", "-u", "/opt/bodywork-action/entrypoint.py"]
