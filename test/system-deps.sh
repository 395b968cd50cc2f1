#!/usr/bin/env sh
# The browser and TURN tests drive Debian's Chromium, Firefox ESR and a real coturn: install them
# when missing (apt-get, as root or through sudo). CHROMIUM_PATH / FIREFOX_PATH / TURNSERVER_PATH
# point at other builds.
set -eu
missing=""
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing="$missing chromium"
[ -x "${FIREFOX_PATH:-/usr/bin/firefox-esr}" ] || missing="$missing firefox-esr"
[ -x "${TURNSERVER_PATH:-/usr/bin/turnserver}" ] || missing="$missing coturn"
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tests need:$missing — install them with your package manager, or set CHROMIUM_PATH / FIREFOX_PATH / TURNSERVER_PATH" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing test dependencies:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
# Debian's coturn package may start a system service; the tests run their own on a free port.
($SUDO systemctl stop coturn || $SUDO service coturn stop) >/dev/null 2>&1 || true
