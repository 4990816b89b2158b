#!/usr/bin/env bash
# Usage: scripts/run.sh DASHTAM_BINARY [serve flags...]
#
# The body of `make run`: reuse DATABASE_URL (and DATABASE_MIGRATE_URL) or
# start the private cluster and use its two roles, create development secrets
# once in the data dir, then replace this shell with `dashtam serve` so
# signals reach the server directly.
set -euo pipefail

bin=$1
shift
data_dir=${DASHTAM_DATA_DIR:-./.dashtam}
mkdir -p "$data_dir"

if [ -z "${DATABASE_URL:-}" ]; then
	DATABASE_URL=$("$bin" --data-dir "$data_dir" dev db start)
	DATABASE_MIGRATE_URL=$("$bin" --data-dir "$data_dir" dev db url --owner)
	export DATABASE_URL DATABASE_MIGRATE_URL
fi

# secret FILE BYTES: print the secret stored in FILE, creating it first from
# BYTES random bytes (base64) if needed. Written to a temporary file and renamed,
# so an interrupted run never leaves a truncated key behind.
secret() {
	local file=$1 bytes=$2
	if [ ! -s "$file" ]; then
		(umask 077 && head -c "$bytes" /dev/urandom | base64 -w0 >"$file.tmp" && mv "$file.tmp" "$file")
		echo "generated development secret $file" >&2
	fi
	cat "$file"
}

if [ -z "${DASHTAM_ENCRYPTION_KEY:-}" ]; then
	DASHTAM_ENCRYPTION_KEY=$(secret "$data_dir/encryption.key" 32)
	export DASHTAM_ENCRYPTION_KEY
fi
if [ -z "${DASHTAM_JWT_SECRET:-}" ]; then
	DASHTAM_JWT_SECRET=$(secret "$data_dir/jwt.secret" 48)
	export DASHTAM_JWT_SECRET
fi
if [ -z "${DASHTAM_ID_KEY:-}" ]; then
	DASHTAM_ID_KEY=$(secret "$data_dir/id.key" 32)
	export DASHTAM_ID_KEY
fi
# The Ed25519 seed that signs audit checkpoints (docs/audit.md).
if [ -z "${DASHTAM_AUDIT_SIGNING_KEY:-}" ]; then
	DASHTAM_AUDIT_SIGNING_KEY=$(secret "$data_dir/audit-signing.key" 32)
	export DASHTAM_AUDIT_SIGNING_KEY
fi
export DASHTAM_DATA_DIR=$data_dir

# serve applies pending migrations too; doing it here first reports a broken
# migration on its own, before the server's start-up output.
"$bin" migrate up
exec "$bin" serve "$@"
