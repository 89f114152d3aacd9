#!/usr/bin/env bash
# Install what the `autoscaler-models` crate needs to build and run its XGBoost model, on a
# Debian machine, as root. Idempotent: run it again and it only reports what is already there.
#
#   * libclang (libclang-dev), which the `xgb` crate's bindgen build step needs;
#   * XGBoost 3.2.0's shared library, libxgboost.so, taken from the PyPI wheel
#     `xgboost-cpu==3.2.0`, with the OpenMP runtime bundled in that wheel
#     (xgboost_cpu.libs/libgomp-*.so*), copied to /usr/local/lib and registered with ldconfig.
#
# Builds then link `-lxgboost` from the default search path. The `xgb` crate's build script
# downloads a prebuilt library unless XGBOOST_LIB_DIR is set, so build with
#   XGBOOST_LIB_DIR=/usr/local/lib cargo build
# (or set it in .cargo/config.toml under [env]).
set -euo pipefail

XGB_VERSION="3.2.0"
LIB_DIR="/usr/local/lib"
MARKER="${LIB_DIR}/libxgboost.so.version"

say() { echo "install-xgboost: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root" >&2
    exit 1
fi

# --- libclang --------------------------------------------------------------------------------
if ldconfig -p | grep -qE 'libclang(-[0-9.]+)?\.so '; then
    say "libclang present, nothing to do"
else
    if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
        say "apt package lists are empty: apt-get update"
        apt-get update
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y libclang-dev; then
        say "install failed, refreshing package lists and retrying"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y libclang-dev
    fi
    say "installed libclang-dev"
fi

# --- libxgboost ------------------------------------------------------------------------------
installed_version() {
    # The marker first; otherwise ask the library itself (XGBoostVersion in its C API).
    if [ -f "${MARKER}" ]; then
        cat "${MARKER}"
    elif [ -f "${LIB_DIR}/libxgboost.so" ]; then
        python3 - "${LIB_DIR}/libxgboost.so" <<'EOF' 2>/dev/null || true
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
v = [ctypes.c_int() for _ in range(3)]
lib.XGBoostVersion(*(ctypes.byref(x) for x in v))
print(".".join(str(x.value) for x in v))
EOF
    fi
}

current="$(installed_version)"
if [ -f "${LIB_DIR}/libxgboost.so" ] && [ "${current}" = "${XGB_VERSION}" ] \
    && compgen -G "${LIB_DIR}/libgomp-*.so*" >/dev/null; then
    echo "${XGB_VERSION}" >"${MARKER}"
    say "libxgboost.so ${XGB_VERSION} present in ${LIB_DIR}, nothing to do"
else
    say "libxgboost.so ${XGB_VERSION} absent (found: '${current:-none}'); fetching xgboost-cpu==${XGB_VERSION}"
    tmp="$(mktemp -d)"
    trap 'rm -rf "${tmp}"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        "xgboost-cpu==${XGB_VERSION}" -d "${tmp}"
    wheel="$(ls "${tmp}"/xgboost_cpu-"${XGB_VERSION}"-*.whl)"
    say "downloaded $(basename "${wheel}")"
    python3 -m zipfile -e "${wheel}" "${tmp}/wheel"
    install -m 0755 "${tmp}/wheel/xgboost/lib/libxgboost.so" "${LIB_DIR}/libxgboost.so"
    say "installed ${LIB_DIR}/libxgboost.so"
    for gomp in "${tmp}"/wheel/xgboost_cpu.libs/libgomp-*.so*; do
        install -m 0755 "${gomp}" "${LIB_DIR}/$(basename "${gomp}")"
        say "installed ${LIB_DIR}/$(basename "${gomp}")"
    done
    ldconfig
    say "ran ldconfig"
    echo "${XGB_VERSION}" >"${MARKER}"
    say "libxgboost.so ${XGB_VERSION} installed (marker ${MARKER})"
fi

# The `-lgomp` that xgb's build script also asks for comes from gcc (libgomp.so); the Rust
# toolchain's C linker brings it. Report it rather than guess at a package.
if ! compgen -G "/usr/lib/gcc/*/*/libgomp.so" >/dev/null && ! ldconfig -p | grep -q 'libgomp.so '; then
    say "warning: no libgomp.so for -lgomp found; install gcc (apt-get install -y gcc)" >&2
fi
