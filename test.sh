#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing (Debian packages,
# non-interactively), makes sure PostgreSQL answers on 127.0.0.1:5432, then runs every test:
# `cargo test --locked`, with this script's arguments passed through
# (./test.sh --test it api::cli  ==  cargo test --locked --test it api::cli).
#
# A second run installs nothing. When something cannot be installed (not root and no sudo,
# no network, apt fails) it names the package and the tests that need it, and exits non-zero:
# no test skips itself because a tool is missing.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests need from the machine: one line per Debian package.
#   package: what `apt-get install` takes
#   provides: a command on PATH, or python3:MODULE (a module python3 must import); present
#             means installed, so nothing is asked of apt
#   needed by: the tests that fail without it (said when it cannot be installed)
NEEDS=$(cat <<'TABLE'
# package          provides             needed by
build-essential    cc                   every test: aws-lc-sys (TLS and JWT crypto) compiles C
postgresql         pg_ctlcluster        every test: one fresh database per test on 127.0.0.1:5432
pgbouncer          pgbouncer            tests/it/scaleout: the fleet of processes through PgBouncer
chromium           chromium             tests/it/console.rs: the operator console in headless Chromium
chromium-driver    chromedriver         tests/it/console.rs: drives Chromium over WebDriver
prometheus         promtool             tests/it/observability: alert rules and dashboard against a real Prometheus; .ci/run: promtool check rules
curl               curl                 tests/it/quickstart (runs the README's curl examples), .ci/schemathesis
jq                 jq                   tests/it/quickstart: the README's examples read ids with jq
python3            python3              .ci/schemathesis: schemathesis (from PyPI) runs on Python; tests/it/recipes: docs/verify/verify.py
python3-venv       python3:ensurepip    .ci/schemathesis: a virtualenv where the system Python refuses pip installs
nodejs             node                 tests/it/recipes: runs docs/verify/verify.js
openjdk-17-jdk-headless javac           tests/it/recipes: compiles and runs docs/verify/Verify.java
golang-go          go                   tests/it/recipes: builds docs/verify/verify.go (standard library only)
php-cli            php                  tests/it/recipes: runs docs/verify/verify.php
TABLE
)

say() { printf 'test.sh: %s\n' "$*" >&2; }

present() {
    case "$1" in
        python3:*) command -v python3 >/dev/null 2>&1 && python3 -c "import ${1#python3:}" 2>/dev/null ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# The rows whose `provides` is missing, as "package<TAB>needed by".
missing=()
while read -r package provides needed_by; do
    [[ -z "$package" || "$package" == \#* ]] && continue
    present "$provides" || missing+=("$package"$'\t'"$needed_by")
done <<<"$NEEDS"

cannot_install() {
    say "cannot install the missing packages ($1). Install them, then run ./test.sh again:"
    local row
    for row in "${missing[@]}"; do
        say "  ${row%%$'\t'*}: needed by ${row#*$'\t'}"
    done
    exit 1
}

# Installing and starting services needs root: directly, or through sudo without a password.
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    as_root=(false)
fi

installed_postgresql=false
if ((${#missing[@]})); then
    [[ "${as_root[*]}" == false ]] && cannot_install "not root, and no sudo without a password"
    packages=()
    for row in "${missing[@]}"; do
        packages+=("${row%%$'\t'*}")
        say "installing ${row%%$'\t'*} (needed by ${row#*$'\t'})"
        [[ "${row%%$'\t'*}" == postgresql ]] && installed_postgresql=true
    done
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq || cannot_install "apt-get update failed: no network?"
    "${as_root[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null ||
        cannot_install "apt-get install failed"
    hash -r
    still=()
    for row in "${missing[@]}"; do
        provides=$(awk -v p="${row%%$'\t'*}" '$1 == p { print $2 }' <<<"$NEEDS")
        present "$provides" || still+=("$row")
    done
    if ((${#still[@]})); then
        missing=("${still[@]}")
        cannot_install "installed, but still not found"
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is missing: install the Rust toolchain with rustup (https://rustup.rs), then run ./test.sh again"
    exit 1
fi

# The tests create their databases on this server (CALLBACKD_TEST_DATABASE_URL overrides it).
admin_url="${CALLBACKD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if [[ -z "${CALLBACKD_TEST_DATABASE_URL:-}" ]] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "PostgreSQL is not answering on 127.0.0.1:5432: starting the $version/main cluster"
    "${as_root[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    if $installed_postgresql; then
        # A cluster this script just created: let the tests in as postgres over 127.0.0.1
        # without a password, as the README says (Debian's default asks for one).
        say "allowing user postgres from 127.0.0.1 without a password (trust) in the new cluster"
        hba="/etc/postgresql/$version/main/pg_hba.conf"
        "${as_root[@]}" sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
        "${as_root[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
fi
if ! psql -qtA -d "$admin_url" -c 'SELECT 1' >/dev/null 2>&1; then
    shown=$(sed -E 's#(//[^:/@]*):[^@]*@#\1:***@#' <<<"$admin_url")
    say "PostgreSQL does not let the tests in at $shown: every test needs it."
    say "Start it (pg_ctlcluster --skip-systemctl-redirect VERSION main start) with trust auth for"
    say "postgres on 127.0.0.1, or set CALLBACKD_TEST_DATABASE_URL to a server that does."
    exit 1
fi

exec cargo test --locked "$@"
