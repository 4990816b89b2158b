package main

import (
	"context"
	"errors"
	"io"

	"github.com/dashtam/dashtam/eventstore"
)

// runVerifyBundle verifies an export bundle offline.
func runVerifyBundle(ctx context.Context, path string, trusted eventstore.TrustedKeys, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}
