#!/usr/bin/env bash
# A single-node Docker Swarm on this machine for the Swarm integration tests, idempotently:
#   1. Debian's `docker.io` when there is no `dockerd`;
#   2. `dockerd` in the background (log: $DOCKERD_LOG) when `docker info` fails;
#   3. `docker swarm init --advertise-addr 127.0.0.1` when this node is not in a swarm;
#   4. the test image ($AUTOSCALER_TEST_IMAGE), built locally with `docker import` from the
#      static busybox of Debian's `busybox-static` package: no registry is needed.
# A second run only reports what is there. Everything stays on 127.0.0.1 and the local socket.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${AUTOSCALER_TEST_IMAGE:-autoscaler-test/busybox:local}"
LOG="${DOCKERD_LOG:-/var/log/autoscaler-dockerd.log}"
say() { echo "swarm-up: $*"; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "run as root (or install sudo)" >&2; exit 1; }
    SUDO="sudo"
fi

if ! command -v dockerd >/dev/null; then
    say "apt-get install docker.io"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        docker.io iptables ca-certificates >/dev/null
else
    say "dockerd present ($(command -v dockerd))"
fi

if docker info >/dev/null 2>&1; then
    say "a Docker daemon answers"
else
    say "starting dockerd (log: $LOG)"
    # setsid: the daemon outlives this script and is not killed with the test run's process group.
    $SUDO setsid nohup dockerd >"$LOG" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        say "dockerd did not answer within 60 s; last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    say "dockerd answers"
fi

state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
if [ "$state" = "active" ]; then
    say "already in a swarm"
else
    say "docker swarm init --advertise-addr 127.0.0.1 (state was: $state)"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "image $IMAGE present"
else
    say "building $IMAGE with docker import (busybox-static, no registry)"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then
        cp /bin/busybox "$tmp/busybox"   # already a static busybox
    else
        # Download and unpack the package rather than install it: it conflicts with `busybox`.
        (cd "$tmp" && apt-get download busybox-static >/dev/null 2>&1) || {
            $SUDO apt-get update -qq
            (cd "$tmp" && apt-get download busybox-static >/dev/null)
        }
        dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/pkg"
        cp "$tmp/pkg/bin/busybox" "$tmp/busybox"
    fi
    mkdir -p "$tmp/root/bin" "$tmp/root/tmp"
    cp "$tmp/busybox" "$tmp/root/bin/busybox"
    for cmd in sh sleep true; do ln -s busybox "$tmp/root/bin/$cmd"; done
    tar -C "$tmp/root" -c . | docker import \
        --change 'CMD ["/bin/busybox", "sleep", "2147483647"]' - "$IMAGE" >/dev/null
    say "image $IMAGE built"
fi
say "ready: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}')"
