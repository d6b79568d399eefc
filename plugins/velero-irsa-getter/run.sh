#!/bin/sh
# This plugin is a symlink into the velero-irsa plugin's plugins/ folder; its launcher is two levels up.
exec "$(cd -P -- "$(dirname -- "$0")/../.." && pwd -P)/bin/velero-irsa" "$@"
