#!/bin/sh
# Install velero-irsa for Helm. `helm plugin install` and `helm plugin update` run it as a hook;
# it also works by hand. Re-running it is harmless. It:
#   1. creates a virtual environment in this directory (.venv-plugin) and installs velero-irsa there,
#      leaving the user's own Python untouched;
#   2. writes a `velero-irsa` launcher into ~/.local/bin or ~/bin (whichever is on PATH), because
#      Helm 3 looks its --post-renderer up on PATH; otherwise it prints the PATH line to add;
#   3. installs the companion plugins from plugins/: on Helm 3 the velero-irsa:// downloader, on
#      Helm 4 the velero-irsa-postrenderer and velero-irsa-getter plugins, unless a Helm 3 on PATH
#      reads the same plugin directory (a Helm 4 plugin there would stop Helm 3 loading any plugin).
#
# Environment:
#   VELERO_IRSA_WHEELS   directory of wheels (velero-irsa and its dependencies): install offline
#   VELERO_IRSA_PYTHON   Python 3.10 or newer for the virtual environment (default: python3)
#   VELERO_IRSA_BIN_DIR  directory for the launcher (default: ~/.local/bin or ~/bin, if on PATH)
#   HELM_BIN             the helm to install the companion plugins with (default: the helm running
#                        this hook, else helm on PATH)
# Option: --force reinstalls the package even when the installed version matches plugin.yaml.
set -eu

root="$(cd -P -- "$(dirname -- "$0")" && pwd -P)"
venv="$root/.venv-plugin"
mark="written by velero-irsa install.sh"

say() {
  printf 'velero-irsa: %s\n' "$*" >&2
}

die() {
  say "error: $*"
  exit 1
}

manifest_version() {
  sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/plugin.yaml"
}

find_python() {
  python="${VELERO_IRSA_PYTHON:-python3}"
  command -v "$python" >/dev/null 2>&1 ||
    die "$python not found: install Python 3.10 or newer, or point VELERO_IRSA_PYTHON at one"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$python is older than 3.10: point VELERO_IRSA_PYTHON at a newer one"
}

installed_version() {
  "$venv/bin/velero-irsa" --version 2>/dev/null | sed -n 's/^velero-irsa //p' || true
}

pip_install() {
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@"
}

install_package() {
  version="$1" force="$2"
  if [ "$force" = false ] && [ "$(installed_version)" = "$version" ]; then
    say "velero-irsa $version is already installed in $venv"
    return 0
  fi
  find_python
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  if [ -n "${VELERO_IRSA_WHEELS:-}" ]; then
    spec="velero-irsa==$version"
    set -- --no-index --find-links "$VELERO_IRSA_WHEELS"
  else
    spec="$root"
    set --
  fi
  pip_install "$@" "$spec"
  # pip keeps an installed distribution of the same version; --force must replace the code too.
  [ "$force" = false ] || pip_install "$@" --force-reinstall --no-deps "$spec"
  [ "$(installed_version)" = "$version" ] || die "velero-irsa $version did not install into $venv"
  say "installed velero-irsa $version into $venv"
}

on_path() {
  case ":$PATH:" in
    *":$1:"*) return 0 ;;
  esac
  return 1
}

launcher_dir() {
  if [ -n "${VELERO_IRSA_BIN_DIR:-}" ]; then
    printf '%s\n' "$VELERO_IRSA_BIN_DIR"
    return 0
  fi
  for dir in "$HOME/.local/bin" "$HOME/bin"; do
    if on_path "$dir"; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  printf '%s\n' "$HOME/.local/bin"
}

install_launcher() {
  dir="$(launcher_dir)"
  launcher="$dir/velero-irsa"
  if [ -e "$launcher" ] && ! grep -q "$mark" "$launcher" 2>/dev/null; then
    say "warning: left $launcher alone (not written by this script); Helm 3 runs that one"
    return 0
  fi
  mkdir -p "$dir"
  printf '#!/bin/sh\n# %s\nexec "%s" "$@"\n' "$mark" "$venv/bin/velero-irsa" >"$launcher.tmp.$$"
  chmod 0755 "$launcher.tmp.$$"
  mv -f "$launcher.tmp.$$" "$launcher"
  if on_path "$dir"; then
    say "launcher: $launcher"
  else
    say "launcher: $launcher is not on PATH; for Helm 3's --post-renderer velero-irsa add:"
    # shellcheck disable=SC2016 # the line is for the user's shell profile: $PATH stays literal
    printf '  export PATH="%s:$PATH"\n' "$dir" >&2
  fi
}

parent_of() {
  if command -v ps >/dev/null 2>&1; then
    ps -o ppid= -p "$1" 2>/dev/null | tr -d ' '
  else
    sed -n 's/^PPid:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null || true
  fi
}

# Helm 3 hands hooks HELM_BIN; Helm 4 does not, but the helm that runs the hook is an ancestor.
find_helm() {
  if [ -n "${HELM_BIN:-}" ]; then
    printf '%s\n' "$HELM_BIN"
    return 0
  fi
  pid="$PPID"
  for _ in 1 2 3; do
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || ps -o comm= -p "$pid" 2>/dev/null || true)"
    case "${exe##*/}" in
      helm | helm[0-9]* | helm-*)
        printf '%s\n' "$exe"
        return 0
        ;;
    esac
    pid="$(parent_of "$pid")"
    case "$pid" in
      "" | 0 | 1) break ;;
    esac
  done
  command -v helm 2>/dev/null || true
}

helm_major() {
  "$1" version --template '{{.Version}}' 2>/dev/null | sed -n 's/^v\([0-9][0-9]*\)\..*/\1/p'
}

plugins_dir_of() {
  if [ -n "${HELM_PLUGIN_DIR:-}" ]; then
    dirname -- "$HELM_PLUGIN_DIR"
  else
    "$1" env HELM_PLUGINS
  fi
}

same_dir() {
  [ -d "$1" ] && [ -d "$2" ] && [ "$(cd -P -- "$1" && pwd -P)" = "$(cd -P -- "$2" && pwd -P)" ]
}

# A Helm 3 on PATH whose default plugin directory is this one (Helm 3 and 4 default to the same).
# Defaults only: a HELM_DATA_HOME set just for this Helm 4 run is how users keep the two apart.
# TODO(shared dirs): a HELM_DATA_HOME or HELM_PLUGINS exported for both versions goes unnoticed, as
# would a Helm 3 not on PATH; telling would need the environment Helm 3 runs in, which we never see.
helm3_sharing() {
  dir="$1"
  for candidate in helm helm3; do
    other="$(command -v "$candidate" 2>/dev/null)" || continue
    [ "$(helm_major "$other")" = 3 ] || continue
    if same_dir "$(unset HELM_PLUGINS HELM_DATA_HOME && "$other" env HELM_PLUGINS 2>/dev/null)" "$dir"; then
      printf '%s\n' "$other"
      return 0
    fi
  done
  return 1
}

install_companion() {
  helm="$1" dir="$2" name="$3"
  if same_dir "$dir/$name" "$root/plugins/$name"; then
    return 0
  fi
  "$helm" plugin uninstall "$name" >/dev/null 2>&1 || true
  "$helm" plugin install "$root/plugins/$name" >/dev/null ||
    die "$helm plugin install $root/plugins/$name failed"
  say "installed the Helm plugin $name"
}

install_companions() {
  helm="$(find_helm)"
  if [ -z "$helm" ]; then
    say "no helm found (set HELM_BIN): skipped the post-renderer and velero-irsa:// plugins"
    return 0
  fi
  major="$(helm_major "$helm")"
  dir="$(plugins_dir_of "$helm")"
  case "$major" in
    3) install_companion "$helm" "$dir" velero-irsa-downloader ;;
    4) install_helm4_companions "$helm" "$dir" ;;
    *) say "warning: $helm is not Helm 3 or 4: skipped the companion plugins" ;;
  esac
}

install_helm4_companions() {
  helm="$1" dir="$2"
  if helm3="$(helm3_sharing "$dir")"; then
    # The legacy downloader is safe for both; the typed plugins would break every plugin for Helm 3.
    install_companion "$helm" "$dir" velero-irsa-downloader
    say "warning: $helm3 (Helm 3) shares $dir, so velero-irsa-postrenderer was NOT installed there:"
    say "  a Helm 4 plugin in that directory stops Helm 3 from loading any plugin. Give Helm 4 its own"
    say "  data directory (see README, 'Helm 3 and Helm 4 on one machine'), e.g."
    say "  HELM_DATA_HOME=\$HOME/.local/share/helm4 $helm plugin install $root"
    return 0
  fi
  install_companion "$helm" "$dir" velero-irsa-postrenderer
  install_companion "$helm" "$dir" velero-irsa-getter
}

main() {
  force=false
  case "${1:-}" in
    --force) force=true ;;
    "") ;;
    *) die "unknown option $1 (only --force)" ;;
  esac
  version="$(manifest_version)"
  [ -n "$version" ] || die "no version in $root/plugin.yaml"
  install_package "$version" "$force"
  install_launcher
  install_companions
}

main "$@"
