#!/usr/bin/env bash
# Everything the project needs to build and test on a fresh Debian machine that has only Rust,
# installed idempotently (a second run only reports what is there). Runs as root, or through
# sudo when it is available.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "install-deps: $*"; }

# rust-toolchain.toml pins the toolchain by version. This machine's one toolchain is rustup's
# `stable` and none can be downloaded, so when `stable` is that version the pin is linked to it
# (else rustup would try to fetch it the first time cargo runs in the repository).
pinned="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
if command -v rustup >/dev/null && [ -n "$pinned" ] \
    && ! (cd / && rustup toolchain list) | grep -q "^$pinned"; then
    if (cd / && rustc +stable -V) | grep -q "^rustc $pinned "; then
        (cd / && rustup toolchain link "$pinned" "$(rustc +stable --print sysroot)")
        say "linked toolchain $pinned to stable"
    else
        say "rust-toolchain.toml pins $pinned, which is not installed (stable is $(cd / && rustc +stable -V))" >&2
    fi
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "run as root (or install sudo)" >&2; exit 1; }
    SUDO="sudo"
fi

# Debian packages: a C toolchain for -sys crates, libclang for xgb's bindgen, Python with pip to
# fetch the XGBoost wheel.
need=()
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
ldconfig -p | grep -qE 'libclang(-[0-9.]+)?\.so ' || need+=(libclang-dev)
# rdkafka builds its bundled librdkafka with cmake (cmake-build feature), with TLS (libssl-dev,
# pkg-config) and zlib; librdkafka's sources include curl's headers even unused.
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
# Fault tests start private daemons in network namespaces (services/scaler/tests/docker_restart.rs).
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
# coinor-libcbc-dev: CBC, the second MILP solver crates/planner's tests cross-check microlp with
# (good_lp's coin_cbc links the prebuilt Debian library; nothing is compiled from C++ source).
for p in libssl-dev zlib1g-dev libcurl4-openssl-dev coinor-libcbc-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "apt-get install ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
else
    say "Debian packages present"
fi

# Prometheus (Debian's) for the aggregator's real test and scripts/stack-up.sh. The package's own
# service must not start (it would bind :9090 on every address): a policy-rc.d we add only for the
# install says so to invoke-rc.d. The tests and scripts start their own Prometheus on 127.0.0.1.
if ! command -v prometheus >/dev/null; then
    say "apt-get install prometheus (its service is not started)"
    policy=/usr/sbin/policy-rc.d
    added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        added_policy=1
    fi
    remove_policy() { if [ -n "$added_policy" ]; then $SUDO rm -f "$policy"; fi; }
    trap remove_policy EXIT
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
    remove_policy
    trap - EXIT
else
    say "prometheus present ($(prometheus --version 2>&1 | head -n 1))"
fi

# XGBoost's shared library (PyPI wheel xgboost-cpu, pinned) into /usr/local/lib.
$SUDO bash scripts/install-xgboost.sh

# statsmodels (PyPI, pinned) in a venv for crates/forecast's SARIMAX reference test.
bash scripts/statsmodels-venv.sh >/dev/null

# rustfmt and clippy for the checks.
if command -v rustup >/dev/null; then
    for c in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
    done
fi
say "done"
