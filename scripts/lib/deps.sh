# Installs the Debian packages the project needs to build, test and run locally, if missing.
# Sourced by scripts/up, scripts/test, scripts/bench and scripts/check-k8s.

rrm_packages=(
    build-essential cmake pkg-config
    libwebsockets-dev libwebsockets-evlib-ev libev-dev libhiredis-dev default-libmysqlclient-dev libjansson-dev libcmocka-dev
    libjwt-dev # tokens (frontend/auth.c, rrm-token)
    zlib1g-dev # permessage-deflate (frontend/deflate.c)
    libssl-dev openssl # TLS: the frontend's wss and token signatures, the tests' certificates
    redis-server mariadb-server jq
    nginx # in front of two frontends: tests/integration/test_fe_proxy.c
    python3-yaml # scripts/check-k8s
    python3-websockets # the README's client: python3 -m websockets ws://127.0.0.1:8765
    prometheus # promtool: the tests check /metrics with `promtool check metrics`
    clang libclang-rt-dev # libFuzzer targets: scripts/fuzz, scripts/test
    chromium # the browser tests (tests/browser), driven by playwright-core: rrm_install_node_deps
)

# rrm_install_deps [PKG...]: installs what is missing of rrm_packages and kubectl, or with
# arguments, of those packages only (scripts/image: what it needs beyond a build).
rrm_install_deps() {
    local missing=() want=("${rrm_packages[@]}")
    (($#)) && want=("$@")
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # kubectl renders k8s/ for scripts/check-k8s; any kubectl will do, Debian's is kubernetes-client
    if ! (($#)) && ! command -v kubectl >/dev/null; then
        missing+=(kubernetes-client)
    fi
    # Node runs the tests' Node clients (tests/node); any node with npm will do, else Debian's
    if ! command -v npm >/dev/null; then
        missing+=(nodejs npm)
    fi
    ((${#missing[@]})) || return 0
    echo "installing: ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    # Package scripts must not start system services: the project runs its own servers.
    if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" -eq 0 ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        # (the trap is global: it removes itself, or every later function's return would run it)
        trap 'rm -f /usr/sbin/policy-rc.d; trap - RETURN' RETURN
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Another apt may be running (a second script installing at the same time): wait for it.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=600 \
        -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

rrm_build() { # rrm_build DIR [cmake args...]
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}

# The tests' Node.js side (scripts/test, after rrm_install_deps has put Chromium in): node and npm
# (any Node.js 18 or later; else Debian's), and the npm packages of tests/package-lock.json (ws
# for test_fe_deflate, playwright-core for the browser tests) in tests/node_modules (not
# committed), installed when missing or older than the lock file.
rrm_install_node_deps() {
    local dir sudo=()
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../tests" && pwd)"
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "installing: nodejs npm" >&2
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends nodejs npm >/dev/null
    fi
    if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
        [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "installing: npm packages of tests/package.json" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}
