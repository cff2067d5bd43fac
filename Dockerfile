# The Tenantry image: the API (`tenantry serve`, the default command) and the migration runner
# (`tenantry db upgrade`). migrations/ and policies/ travel inside the wheel, so the installed
# package needs no checkout next to it.
# BASE_IMAGE: the official image by default; where no registry is reachable, a local image with
# Python 3.11 such as tenantry-local/python:3.11 (docs/06-operations.md, "Compose without a
# registry: the local images").
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/build
# The locked, hash-checked dependencies first, from the lockfile alone: that layer survives every
# change but one to requirements/app.lock. Then only what the wheel is built from, so a change to
# tests/ or docs/ does not rebuild the image.
COPY requirements/app.lock ./requirements/app.lock
RUN pip install --require-hashes -r requirements/app.lock
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY migrations ./migrations
COPY policies ./policies
RUN pip install --no-deps . && rm -rf /tmp/build

# The service needs no write access anywhere, and never runs as root.
RUN useradd --system --create-home --uid 10001 --shell /usr/sbin/nologin tenantry
USER tenantry
WORKDIR /home/tenantry

# Inside a container the API must listen on all interfaces; publish the port on 127.0.0.1 or
# behind a proxy to choose who can reach it.
ENV TENANTRY_HOST=0.0.0.0
EXPOSE 8000
CMD ["tenantry", "serve"]
