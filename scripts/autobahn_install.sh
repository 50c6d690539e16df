#!/usr/bin/env bash
# Install wstest (the Autobahn testsuite) for scripts/autobahn.sh: python2.7 from Debian
# bullseye when missing, pip for it, then the pinned wheels. Idempotent: every step is skipped
# when what it installs already works.
#
#   bash scripts/autobahn_install.sh [options]
#
# Options:
#   --check             install nothing: exit 0 if wstest runs, 1 if it does not
#   -h, --help          show this help
#
# Installing python2.7 needs root (apt-get); the wheels go to python2.7's user site.

set -euo pipefail

PY2=/usr/bin/python2.7

# Python 2 packages for wstest, pinned (the full resolved set, so installs
# are reproducible). autobahntestsuite 25.10.1 is the py2 release that pins
# its own deps; these match those pins plus their transitive deps.
PY2_PIP_BOOTSTRAP=(pip==20.3.4 setuptools==44.1.1 wheel==0.37.1)
PY2_DEPS=(
    autobahntestsuite==25.10.1
    autobahn==0.10.9
    Twisted==19.10.0
    zope.interface==4.6.0
    txaio==2.1.0
    pyOpenSSL==19.1.0
    cryptography==3.3.2
    cffi==1.15.1
    pycparser==2.21
    service-identity==18.1.0
    pyasn1==0.5.1
    pyasn1-modules==0.3.0
    attrs==21.4.0
    Automat==22.10.0
    constantly==15.1.0
    hyperlink==21.0.0
    incremental==16.10.1
    PyHamcrest==1.10.1
    idna==2.10
    ipaddress==1.0.23
    enum34==1.1.10
    typing==3.10.0.0
    six==1.16.0
    klein==17.10.0
    Werkzeug==1.0.1
    Jinja2==2.11.3
    MarkupSafe==1.1.1
    unittest2==1.1.0
    linecache2==1.0.0
    traceback2==1.4.0
    wsaccel==0.6.6
    ujson==2.0.3
    setuptools==44.0.0
)

CHECK=0

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'autobahn_install.sh: error: %s\n' "$*" >&2; exit 2; }

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --check) CHECK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

py2_user_bin() { "$PY2" -c 'import site; print(site.USER_BASE)' 2>/dev/null | sed 's|$|/bin|'; }

wstest_path() {
    local bin
    bin="$(py2_user_bin)" || return 1
    [ -n "$bin" ] && [ -x "$bin/wstest" ] || return 1
    printf '%s/wstest\n' "$bin"
}

wstest_works() {
    local w
    w="$(wstest_path)" || return 1
    "$w" --help >/dev/null 2>&1
}

py2_works() { [ -x "$PY2" ] && "$PY2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; }

# Print the URI of the machine's main Debian archive (not the security one),
# read from the apt sources at run time.
debian_mirror_uri() {
    local f uri=""
    # deb822 files: take the URIs of a stanza whose Suites has a plain suite.
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri="$(awk '
            function flush() {
                if (uris != "" && suites != "" && suites !~ /-security/ && types ~ /(^|[ \t])deb([ \t]|$)/) {
                    split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
                }
                uris = ""; suites = ""; types = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
            /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
            /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
            END { if (!found) flush() }
        ' "$f")"
        [ -n "$uri" ] && break
    done
    # Classic one-line format.
    if [ -z "$uri" ]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            case "$f" in */bullseye.list) continue ;; esac
            uri="$(awk '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) !~ /-security/ && $i ~ /debian/) { print $i; exit }
                }
            ' "$f")"
            [ -n "$uri" ] && break
        done
    fi
    [ -n "$uri" ] || return 1
    printf '%s\n' "${uri%/}"
}

# Write $2 to $1 only if the content differs. Returns 0 if it changed.
write_if_changed() {
    if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
        return 1
    fi
    printf '%s\n' "$2" >"$1"
}

install_python2() {
    if py2_works; then
        log "python2.7 already installed ($PY2)"
        return
    fi
    [ "$(id -u)" = 0 ] || die "installing python2.7 needs root (apt-get)"
    local uri keyring=""
    uri="$(debian_mirror_uri)" || die "could not find a Debian mirror URI in the apt sources"
    log "adding the bullseye suite from $uri"
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
        keyring=" [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
    write_if_changed /etc/apt/sources.list.d/bullseye.list \
        "deb${keyring} ${uri} bullseye main" || true
    write_if_changed /etc/apt/preferences.d/bullseye.pref \
        "Package: *
Pin: release n=bullseye
Pin-Priority: 100" || true
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -t bullseye python2.7 python2.7-dev
    py2_works || die "python2.7 still does not work after apt-get install"
}

install_py2_pip() {
    if "$PY2" -m pip --version >/dev/null 2>&1; then
        log "pip for python2.7 already installed"
        return
    fi
    local tmp
    tmp="$(mktemp -d)"
    log "bootstrapping pip for python2.7"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 2.7 --implementation py --abi none --platform any \
        -d "$tmp" "${PY2_PIP_BOOTSTRAP[@]}"
    "$PY2" "$tmp"/pip-20.3.4-py2.py3-none-any.whl/pip install --user --no-warn-script-location \
        "$tmp"/*.whl
    rm -rf "$tmp"
    "$PY2" -m pip --version >/dev/null 2>&1 || die "pip for python2.7 does not work"
}

install_wstest() {
    if wstest_works; then
        log "wstest already installed: $(wstest_path)"
        return
    fi
    local t0=$SECONDS
    install_python2
    install_py2_pip
    log "installing autobahntestsuite for python2.7"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY2" -m pip install --user --no-warn-script-location \
        "${PY2_DEPS[@]}"
    wstest_works || die "wstest was installed but does not run"
    log "wstest installed in $((SECONDS - t0))s: $(wstest_path)"
}

if [ "$CHECK" = 1 ]; then
    if wstest_works; then
        log "wstest installed: $(wstest_path)"
        exit 0
    fi
    log "wstest is not installed"
    exit 1
fi
install_wstest
