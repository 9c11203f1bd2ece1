#!/usr/bin/env bash
# Make the local Python base image that builds start FROM, without any image registry:
# a minimal Debian (mmdebstrap) with python3 and pip, imported with `docker import`.
# The host's CA bundle goes in too, so pip inside builds works behind a TLS-intercepting proxy.
# Packages come from the Debian mirror the host's apt already uses (its sources list), so the
# script works on any site; DEBIAN_MIRROR overrides it.
#   usage: scripts/make-base-image.sh [IMAGE]        (default kaos-python:3.11)
set -euo pipefail
image="${1:-kaos-python:3.11}"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image already exists"
    exit 0
fi
suite="${DEBIAN_SUITE:-bookworm}"

# The URI of the host's first enabled `deb` source for $suite (or, failing that, for any suite
# without a dash: a main archive, not -security or -updates). Reads both formats: one-line
# sources.list entries and deb822 *.sources paragraphs (Types/URIs/Suites).
host_mirror() {
    local lists=() sources=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && lists+=("$f")
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && sources+=("$f")
    done
    {
        if [ ${#lists[@]} -gt 0 ]; then
            awk '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
                print $(i + 1), $i
            }' "${lists[@]}"
        fi
        if [ ${#sources[@]} -gt 0 ]; then
            awk 'BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (n = 1; n <= NF; n++) {
                    line = $n
                    if (line ~ /^[ \t]*#/) continue
                    key = tolower(line); sub(/:.*/, "", key)
                    value = line; sub(/^[^:]*:[ \t]*/, "", value)
                    if (key == "types") types = value
                    else if (key == "uris") uris = value
                    else if (key == "suites") suites = value
                    else if (key == "enabled") enabled = tolower(value)
                }
                if (enabled == "no" || (" " types " ") !~ / deb /) next
                split(uris, u, /[ \t]+/); split(suites, s, /[ \t]+/)
                for (k in s) if (s[k] != "") print s[k], u[1]
            }' "${sources[@]}"
        fi
    } | awk -v want="$suite" '
        $1 == want && !exact { exact = $2 }
        $1 !~ /-/ && !any { any = $2 }
        END { if (exact) print exact; else if (any) print any }'
}

mirror="${DEBIAN_MIRROR:-$(host_mirror)}"
if [ -z "$mirror" ]; then
    echo "error: no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/" \
         "(set DEBIAN_MIRROR=http://YOUR-MIRROR/debian)" >&2
    exit 1
fi
ca="${KAOS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
hooks=()
if [ -f "$ca" ]; then
    hooks+=(--customize-hook="upload $ca /etc/ssl/certs/ca-certificates.crt")
fi
echo "making base image $image from Debian $suite at $mirror ..."
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
