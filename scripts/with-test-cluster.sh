#!/usr/bin/env bash
# Usage: scripts/with-test-cluster.sh DASHTAM_BINARY COMMAND [ARGS...]
#
# Runs COMMAND with DATABASE_URL pointing at a throwaway PostgreSQL cluster in a
# temporary directory, then stops and deletes the cluster whatever happened,
# and exits with COMMAND's status. With DATABASE_URL already set it just runs
# COMMAND against that database.
set -euo pipefail

bin=$1
shift
if [ -n "${DATABASE_URL:-}" ]; then
	exec "$@"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/dashtam-test.XXXXXX")
cleanup() {
	"$bin" --data-dir "$dir" dev db stop || echo "warning: could not stop the test cluster in $dir" >&2
	rm -rf "$dir"
}
trap cleanup EXIT
# Turn Ctrl-C into a normal exit so the EXIT trap runs and the cluster goes away.
trap 'exit 130' INT TERM

DATABASE_URL=$("$bin" --data-dir "$dir" dev db start --throwaway)
export DATABASE_URL

status=0
"$@" || status=$?
exit "$status"
