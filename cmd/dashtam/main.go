// Command dashtam is the one Dashtam binary: the API server, the projectors and
// the operator tools (migrations, projections, audit, dev database) as subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// run executes one command line on the process's stdout and stderr.
func run(ctx context.Context, args []string) int {
	return runWith(ctx, args, os.Stdout, os.Stderr)
}

// runWith executes one command line, writing to stdout and stderr, and maps
// its outcome to the documented exit codes: 0 ok, 1 failure, 2 usage. It takes
// the writers so that end-to-end tests run the real command tree in process.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "dashtam: %v\n", err)
		help := "dashtam"
		if ue.command != "" && ue.command != "dashtam" {
			help += " " + ue.command
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", help)
		return 2
	}
	fmt.Fprintf(stderr, "dashtam: %v\n", err)
	return 1
}
