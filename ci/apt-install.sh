#!/usr/bin/env bash
# Usage: bash ci/apt-install.sh LABEL PACKAGE...
# Installs the Debian packages among PACKAGE... that are not installed yet (root or sudo);
# skips apt entirely when all are present. LABEL prefixes its messages ("setup", ...).
set -euo pipefail
label=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$label: all Debian packages present ($*)"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "$label: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "$label: done"
