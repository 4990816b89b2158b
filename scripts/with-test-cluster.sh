#!/usr/bin/env bash
# Usage: scripts/with-test-cluster.sh DASHTAM_BINARY COMMAND [ARGS...]
#
# Runs COMMAND against a throwaway PostgreSQL cluster in a temporary directory,
# with DATABASE_URL naming its application role and DATABASE_MIGRATE_URL its
# owner role (which migrations/testdb creates the test databases as), then
# stops and deletes the cluster whatever happened, and exits with COMMAND's
# status. With DATABASE_URL already set it just runs COMMAND against that
# database (and DATABASE_MIGRATE_URL, if set).
set -euo pipefail

bin=$1
shift
if [ -n "${DATABASE_URL:-}" ]; then
	exec "$@"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/dashtam-test.XXXXXX")
cleanup() {
	"$bin" --data-dir "$dir" dev db stop --delete || echo "warning: could not stop the test cluster in $dir" >&2
	rm -rf "$dir"
}
trap cleanup EXIT
# Turn Ctrl-C into a normal exit so the EXIT trap runs and the cluster goes away.
trap 'exit 130' INT TERM

DATABASE_URL=$("$bin" --data-dir "$dir" dev db start --throwaway)
DATABASE_MIGRATE_URL=$("$bin" --data-dir "$dir" dev db url --owner)
export DATABASE_URL DATABASE_MIGRATE_URL

status=0
"$@" || status=$?
exit "$status"
