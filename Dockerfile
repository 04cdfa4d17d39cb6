# routeway's gateway image. Build: docker build -t routeway .   Run (embedded SQLite in a volume):
#   docker run -p 8080:8080 -v routeway-data:/data -e ROUTEWAY_ADMIN_KEY=... routeway
# With ROUTEWAY_DATABASE_URL (and ROUTEWAY_REDIS_URL) set, replicas are stateless: see compose.yaml.

# llama-cpp-python (the local provider) compiles llama.cpp from source: the tool chain stays in this stage.
FROM python:3.12-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /venv
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /venv/bin/pip install --no-cache-dir /src

FROM python:3.12-slim-bookworm
# libgomp: llama.cpp's OpenMP runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home routeway
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH ROUTEWAY_DATA_DIR=/data PYTHONUNBUFFERED=1
USER routeway
WORKDIR /data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
# --host 0.0.0.0: inside a container the published port reaches the process only on all interfaces
CMD ["routeway", "serve", "--host", "0.0.0.0", "--port", "8080", "--log-level", "info"]
