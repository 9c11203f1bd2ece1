#!/usr/bin/env bash
# Make the local Python base image that builds start FROM, without any image registry:
# a minimal Debian (mmdebstrap) with python3 and pip, imported with `docker import`.
# The host's CA bundle goes in too, so pip inside builds works behind a TLS-intercepting proxy.
#   usage: scripts/make-base-image.sh [IMAGE]        (default kaos-python:3.11)
set -euo pipefail
image="${1:-kaos-python:3.11}"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image already exists"
    exit 0
fi
ca="${KAOS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
hooks=()
if [ -f "$ca" ]; then
    hooks+=(--customize-hook="upload $ca /etc/ssl/certs/ca-certificates.crt")
fi
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
echo "making base image $image from Debian $suite ..."
mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-pip,python3-venv,ca-certificates \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    "${hooks[@]}" \
    "$suite" - "$mirror" \
  | docker import \
      --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1' \
      --change 'CMD ["python3"]' \
      - "$image"
docker image inspect "$image" --format '{{.Id}} {{.Size}}'
