package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/identity"
)

func init() { subcommands = append(subcommands, newUsersCommand) }

// maxPasswordInput bounds what is read from stdin: the policy allows 128
// characters, and a runaway pipe must not be buffered whole.
const maxPasswordInput = 4096

func newUsersCommand(o *globalOptions) *cobra.Command {
	users := &cobra.Command{
		Use:   "users",
		Short: "Manage users from the command line (bootstrap the first admin)",
		Args:  cobra.ArbitraryArgs,
		RunE:  requireSubcommand,
	}
	users.AddCommand(newUsersCreateCommand(o))
	return users
}

// usersCreateFlags are the flags of `users create`.
type usersCreateFlags struct {
	email    string
	role     string
	verified bool
}

func newUsersCreateCommand(o *globalOptions) *cobra.Command {
	var f usersCreateFlags
	cmd := &cobra.Command{
		Use:   "create --email E --role admin|auditor|user|readonly [--verified]",
		Short: "Create a user; the password is the first line of stdin",
		Long: "Create a user with one role, reading the password from the first line of stdin\n" +
			"(prompted without echo on a terminal), so it never appears in argv or shell history.\n" +
			"It reads the same configuration as serve and applies pending migrations first.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			role, err := f.validate(cmd)
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			svc, closeSvc, err := openIdentity(cmd.Context(), o, osGetenv, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeSvc()
			return createUser(cmd.Context(), svc, f.email, pw, role, f.verified, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&f.email, "email", "", "email address of the new user (required)")
	cmd.Flags().StringVar(&f.role, "role", "", "role: admin, auditor, user or readonly (required)")
	cmd.Flags().BoolVar(&f.verified, "verified", false, "mark the email as verified, so the user can log in at once")
	return cmd
}

// validate checks the flags before anything is read or opened, so a typo
// costs nothing and exits 2.
func (f usersCreateFlags) validate(cmd *cobra.Command) (user.Role, error) {
	if strings.TrimSpace(f.email) == "" {
		return "", usagef(cmd, "--email is required")
	}
	if f.role == "" {
		return "", usagef(cmd, "--role is required (admin, auditor, user or readonly)")
	}
	role, err := user.ParseRole(f.role)
	if err != nil {
		return "", usagef(cmd, "--role %q is not one of admin, auditor, user or readonly", f.role)
	}
	return role, nil
}

// readPassword returns the first line of in without its line ending; on a
// terminal it prompts on errw and reads without echo.
func readPassword(in io.Reader, errw io.Writer) (string, error) {
	if file, ok := in.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		fmt.Fprint(errw, "Password: ")
		b, err := term.ReadPassword(int(file.Fd()))
		fmt.Fprintln(errw)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return checkPassword(string(b))
	}
	line, err := bufio.NewReader(io.LimitReader(in, maxPasswordInput)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	return checkPassword(strings.TrimRight(line, "\r\n"))
}

// checkPassword refuses an empty password here, before the database is
// opened; everything else is the password policy's to judge.
func checkPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("no password on stdin: pipe it in as the first line")
	}
	return pw, nil
}

// openIdentity connects, migrates and builds the identity service as serve
// does; close releases the pool.
func openIdentity(ctx context.Context, o *globalOptions, getenv func(string) string, logw io.Writer) (identity.Service, func(), error) {
	dataDir, err := o.absDataDir()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadServeConfig(getenv, dataDir)
	if err != nil {
		return nil, nil, err
	}
	pool, owner, _, err := openMigratedStore(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	// Only the migration needed the owner.
	if owner != pool {
		owner.Close()
	}
	// The users it creates have their email sealed, like serve's.
	store, keys, closeKeys, err := personalStore(pool, cfg.Keyring)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	closeAll := func() {
		closeKeys()
		pool.Close()
	}
	// Insert-only: the verification mail of an unverified user is a job
	// that a running server's workers send.
	j, err := jobs.New(pool, nil, jobs.Config{})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	svc, err := newIdentityService(cfg, store, pool, j, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})), keys, nil)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return svc, closeAll, nil
}

// createUser creates the user and reports it on out; errors say what to
// fix in words, since an operator reads them rather than a client.
func createUser(ctx context.Context, svc identity.Service, email, pw string, role user.Role, verified bool, out io.Writer) error {
	v, err := svc.CreateUser(ctx, email, pw, role, verified)
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	fmt.Fprintf(out, "created user %s <%s> role=%s verified=%t\n", v.ID, v.Email, role, v.Verified)
	return nil
}
