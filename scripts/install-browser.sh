#!/usr/bin/env bash
# Installs a Chromium for the browser tests (tests/web), from Debian's `chromium` package.
#
# Playwright drives this system browser; `playwright install` is never used, since it downloads a
# browser build from a CDN that offline and CI machines cannot reach.
#
# Exit status: 0 when a Chromium is there afterwards, or when this machine cannot install one
# (no apt-get, not root and no password-less sudo): it says why and the browser tests skip.
# 1 only when apt-get was tried and failed.
set -u

for name in chromium chromium-browser google-chrome-stable google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "install-browser: $(command -v "$name") is already installed"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get on this machine; install Chromium to run tests/web (they skip without it)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "install-browser: not root and no password-less sudo; run 'sudo apt-get install chromium' to run tests/web"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-browser: apt-get install chromium"
# Try the package lists already there first; a fresh machine has none, so update and retry.
if "${sudo[@]}" apt-get install -y -q chromium >/dev/null \
    || { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q chromium >/dev/null; }; then
    echo "install-browser: installed $(command -v chromium)"
    exit 0
fi
echo "install-browser: apt-get could not install chromium; the browser tests will skip" >&2
exit 1
