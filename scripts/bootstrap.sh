#!/usr/bin/env bash
# Installs what is missing, and nothing else: the virtualenv and the package, Debian's flite,
# sox and chromium, and the real Toxiproxy server built from its Go module. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
TOXIPROXY_VERSION=v2.12.0
missing=()

say() { printf 'bootstrap: %s\n' "$*"; }

# --- Python: .venv with the package, its dev extras, the vendor SDKs (tests/server) and the voice-agent
# STT clients (the relay suite's clients group) ---------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing the package into $VENV (pip install -e .[dev,vendors,clients])"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e ".[dev,vendors,clients]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

# --- Debian packages: flite, sox, chromium ----------------------------------------------
apt_missing=()
command -v flite >/dev/null 2>&1 || apt_missing+=(flite)
command -v sox >/dev/null 2>&1 || apt_missing+=(sox)
[ -x /usr/bin/chromium ] || apt_missing+=(chromium)
# the docker suite: Debian's engine, and debootstrap for the reference server image's base
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || apt_missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || apt_missing+=(debootstrap)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${apt_missing[@]}" >/dev/null
  else
    missing+=("Debian packages ${apt_missing[*]}: run 'sudo apt-get install ${apt_missing[*]}'")
  fi
fi

# --- Toxiproxy: the real server, built from its Go module --------------------------------
if [ ! -x "$VENV/bin/toxiproxy-server" ]; then
  if command -v toxiproxy-server >/dev/null 2>&1; then
    ln -sf "$(command -v toxiproxy-server)" "$VENV/bin/toxiproxy-server"
  elif command -v go >/dev/null 2>&1; then
    say "building toxiproxy-server $TOXIPROXY_VERSION with go install"
    gobin="$(mktemp -d)"
    GOBIN="$gobin" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
    GOBIN="$gobin" go install "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION"
    # The module names its binaries after their folders (server, cli).
    cp "$gobin/server" "$VENV/bin/toxiproxy-server"
    cp "$gobin/cli" "$VENV/bin/toxiproxy-cli"
    rm -rf "$gobin"
  elif [ -z "${TOXIPROXY_URL:-}" ]; then
    missing+=("toxiproxy-server: install Go (https://go.dev/dl) and rerun, or put a toxiproxy-server on PATH, or set TOXIPROXY_URL to a running Toxiproxy")
  fi
fi

# --- Docker: the engine running, and the reference server's image built (cached) ------------
engine_up() { "$VENV/bin/python" -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1; }
DOCKERD_LOG=/var/log/harness-dockerd.log
if ! engine_up; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    missing+=("the Docker engine at DOCKER_HOST=$DOCKER_HOST does not answer")
  elif [ "$(id -u)" = 0 ] && { command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ]; }; then
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    PATH="$PATH:/usr/sbin:/sbin" setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 120); do engine_up && break; sleep 0.5; done  # at most 60 s
    engine_up || missing+=("dockerd did not answer on /var/run/docker.sock within 60 s: see $DOCKERD_LOG")
  elif command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ]; then
    missing+=("the Docker engine is installed but not running, and only root can start it: 'sudo dockerd &' (or 'sudo systemctl start docker'), and add $(id -un) to the docker group")
  else
    missing+=("the Docker engine: 'sudo apt-get install docker.io debootstrap', then rerun as root (it starts dockerd)")
  fi
fi
if engine_up; then
  # Reused when present and up to date (about a second); made from scratch on a new machine
  # (debootstrap base about 1-3 minutes, wheels and image about 2 more), then cached.
  if ! "$VENV/bin/harness" image build; then
    missing+=("the reference server's Docker image: 'harness image build' failed (see above)")
  fi
fi

# --- Playwright: Python package only; it drives Debian's /usr/bin/chromium ---------------
# (no 'playwright install': browser downloads are neither needed nor possible offline)

if [ ${#missing[@]} -gt 0 ]; then
  say "cannot install everything; missing:"
  for m in "${missing[@]}"; do printf '  - %s\n' "$m"; done
  exit 2
fi
