// Package migrations owns the database schema: goose SQL files embedded in the
// binary, so `dashtam migrate` and `dashtam serve` need no files beside them,
// and the code that applies them safely when several instances start at once.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql, in version order.
//
//go:embed *.sql
var FS embed.FS
