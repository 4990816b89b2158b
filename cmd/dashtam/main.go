// Command dashtam is the one Dashtam binary: the API server, the projectors and
// the operator tools (migrations, projections, audit, dev database) as subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and maps its outcome to the documented exit
// codes: 0 ok, 1 failure, 2 usage.
func run(ctx context.Context, args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "dashtam: %v\n", err)
		fmt.Fprintf(os.Stderr, "Run 'dashtam %s --help' for usage.\n", ue.command)
		return 2
	}
	fmt.Fprintf(os.Stderr, "dashtam: %v\n", err)
	return 1
}
