# The runner image of `kperf runnergroup`: the server pod and every runner pod run `kperf …` from it.
#
#   docker build -t REGISTRY/kperf:TAG .          # from the repository root
#   docker push REGISTRY/kperf:TAG
#   kperf runnergroup run --runner-image REGISTRY/kperf:TAG --runnergroup file:///abs/spec.yaml
#
# kperf is installed from this repository (not from a registry), with its dependencies' wheels
# (pycurl's bundles libcurl with HTTP/2; helm-python-sdk's the Helm SDK).
FROM python:3.11-slim-bookworm

# No compiler is needed: every dependency ships manylinux wheels.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY kperf_core ./kperf_core
COPY plugins ./plugins
COPY charts ./charts
RUN pip install . && rm -rf /src

# An unprivileged user: runners only talk to the API server and to the runner-group server.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin kperf
USER 65532
WORKDIR /tmp

# Pods name the command (`kperf runnergroup server …`, `kperf runnergroup runner …`).
CMD ["kperf", "--help"]
