# The conformance suite as a container image (docs/ci-gating.md#the-container-image):
#
#   docker build -t enginy-conformance .
#   docker run --rm -e ENGINY_API_KEY -v "$PWD/reports:/reports" enginy-conformance \
#     run --base-url https://staging.crm.example/enginy
#
# The key is never baked in: it comes at run time from the environment (`-e ENGINY_API_KEY` passes
# the caller's variable by name, so its value is not on the command line either).
FROM python:3.11-slim

# No .pyc files written at run time, output as it happens, no pip cache kept in the image, and no
# warning about pip running as root (it does, once, to install into the image's Python).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Only what the package is built from (.dockerignore lets nothing else into the context). The
# constraints are the tested set of exact versions, as for every other install of the suite.
COPY pyproject.toml constraints.txt README.md /tmp/enginy-src/
COPY spec/ /tmp/enginy-src/spec/
COPY conformance/ /tmp/enginy-src/conformance/
COPY mock_server/ /tmp/enginy-src/mock_server/
RUN python -m pip install --constraint /tmp/enginy-src/constraints.txt /tmp/enginy-src

# A fixed numeric uid, so `runAsNonRoot` (Kubernetes) can verify it and a mounted /reports can be
# given to it. /reports takes the reports; /work is the working directory, where a mounted
# enginy-conformance.toml and baseline file are found by their relative paths.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /work enginy \
    && mkdir /reports /work \
    && chown enginy:enginy /reports /work
USER 10001:10001
WORKDIR /work
ENV ENGINY_REPORT_DIR=/reports
VOLUME ["/reports"]

# Exec form, so the suite gets signals itself: Ctrl-C stops it cleanly (exit 130). As PID 1 it
# ignores SIGTERM, so run it with --init for `docker stop` to end it at once.
ENTRYPOINT ["enginy-conformance"]
CMD ["run"]
