# Shared steps of the README commands and CI. Sourced, not run.
# Every step is idempotent: a second run installs, downloads and converts nothing.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

APT_PACKAGES=(cmake clang libclang-dev pkg-config libasound2-dev python3 python3-venv python3-pip
              kamailio kamailio-tls-modules postgresql-15 baresip-core sip-tester sox espeak-ng chromium nodejs npm tcpdump)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

ensure_apt_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    # python3/pip may come from elsewhere (pyenv); only require the Debian ones when absent.
    if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 && python3 -m venv --help >/dev/null 2>&1; then
        local keep=()
        for p in "${missing[@]}"; do
            case "$p" in python3|python3-venv|python3-pip) ;; *) keep+=("$p") ;; esac
        done
        missing=("${keep[@]}")
    fi
    if [ ${#missing[@]} -eq 0 ]; then
        step "system packages: all present"
        return
    fi
    step "system packages: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: installing system packages needs root (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    # kamailio's package starts a system service on :5060 on some images; tests run their own.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now kamailio >/dev/null 2>&1 || true; fi
    pkill -x kamailio >/dev/null 2>&1 || true
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            echo "error: cargo (Rust stable) is not installed. Install Rust with rustup (https://rustup.rs) or Debian's cargo >= 1.89, then re-run." >&2
            exit 1
        fi
    fi
}

build_release() {
    step "building tingshuo (release; the first build compiles whisper.cpp and takes several minutes)"
    cargo build --release --locked
}

fetch_models() {
    step "models: fetching and verifying (cached in ${TINGSHUO_CACHE:-$HOME/.cache/tingshuo})"
    "$REPO_ROOT/target/release/tingshuo" models fetch
}

# Node.js and npm may come from outside Debian (the image's own Node); only ask apt when absent.
drop_present_node() {
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        local keep=()
        for p in "${APT_PACKAGES[@]}"; do
            case "$p" in nodejs|npm) ;; *) keep+=("$p") ;; esac
        done
        APT_PACKAGES=("${keep[@]}")
    fi
}
drop_present_node

ensure_browser_test_deps() {
    if [ -d "$REPO_ROOT/tests/browser/node_modules/playwright-core" ]; then
        step "browser test: playwright-core present"
        return
    fi
    step "browser test: installing playwright-core (npm, no browser download)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$REPO_ROOT/tests/browser" --no-audit --no-fund
}
