#!/bin/sh
# Installs the Debian packages rrc needs, with one apt-get, only when some are
# missing. Run by `make` (target deps); safe to run by hand.
set -e
PKGS="gcc make pkg-config llvm-19-dev liblua5.4-dev libopenblas-dev zlib1g-dev libjansson-dev libpng-dev libjpeg62-turbo-dev openmpi-bin libopenmpi-dev"
[ -n "$RRC_EXTRA_PKGS" ] && PKGS="$PKGS $RRC_EXTRA_PKGS"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" != 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
