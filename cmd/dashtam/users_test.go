package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/identity"
)

// runWithStdin runs one command line as runWith does, with stdin supplied,
// and returns the exit code and both outputs.
func runWithStdin(tb testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	var out, errw strings.Builder
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errw)
	err := root.ExecuteContext(context.Background())
	var ue *usageError
	switch {
	case err == nil:
		return 0, out.String(), errw.String()
	case errors.As(err, &ue):
		return 2, out.String(), errw.String() + err.Error()
	default:
		return 1, out.String(), errw.String() + err.Error()
	}
}

// Bad flags and a missing password are refused before any database is
// touched: the database URL here points nowhere.
func TestUsersCreateRefusesBadInvocations(t *testing.T) {
	nowhere := "--database-url=postgres://127.0.0.1:1/none"
	tests := map[string]struct {
		stdin string
		args  []string
		want  string
	}{
		"no email":       {"pw\n", []string{"users", "create", "--role", "admin", nowhere}, "--email is required"},
		"no role":        {"pw\n", []string{"users", "create", "--email", "a@example.com", nowhere}, "--role is required"},
		"unknown role":   {"pw\n", []string{"users", "create", "--email", "a@example.com", "--role", "root", nowhere}, `--role "root"`},
		"unknown flag":   {"pw\n", []string{"users", "create", "--email", "a@example.com", "--role", "admin", "--admin", nowhere}, "unknown flag"},
		"stray argument": {"pw\n", []string{"users", "create", "extra", "--email", "a@example.com", "--role", "admin", nowhere}, "unexpected argument"},
		"empty stdin":    {"", []string{"users", "create", "--email", "a@example.com", "--role", "admin", nowhere}, "no password on stdin"},
		"empty line":     {"\nsecond line\n", []string{"users", "create", "--email", "a@example.com", "--role", "admin", nowhere}, "no password on stdin"},
		"no subcommand":  {"", []string{"users"}, "missing command"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runWithStdin(t, tt.stdin, tt.args...)
			assert.Equal(t, 2, code, stderr)
			assert.Contains(t, stderr, tt.want)
		})
	}
}

func TestReadPasswordTakesTheFirstLine(t *testing.T) {
	for in, want := range map[string]string{
		"correct horse battery\n":         "correct horse battery",
		"correct horse battery\r\nmore\n": "correct horse battery",
		"no newline at end":               "no newline at end",
		"  spaces are kept  \n":           "  spaces are kept  ",
	} {
		got, err := readPassword(strings.NewReader(in), io.Discard)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
}

// recordingCreator is the one Service method createUser needs.
type recordingCreator struct {
	identity.Service
	email, password string
	role            user.Role
	verified        bool
	err             error
}

func (r *recordingCreator) CreateUser(_ context.Context, email, pw string, role user.Role, verified bool) (identity.UserView, error) {
	r.email, r.password, r.role, r.verified = email, pw, role, verified
	return identity.UserView{Email: email, Roles: []user.Role{role}, Verified: verified}, r.err
}

func TestCreateUserReportsWithoutThePassword(t *testing.T) {
	svc := &recordingCreator{}
	var out strings.Builder
	require.NoError(t, createUser(context.Background(), svc, "root@example.com", "correct horse battery", user.RoleAdmin, true, &out))
	assert.Equal(t, "correct horse battery", svc.password)
	assert.Equal(t, user.RoleAdmin, svc.role)
	assert.True(t, svc.verified)
	assert.Contains(t, out.String(), "<root@example.com> role=admin verified=true")
	assert.NotContains(t, out.String(), "correct horse")

	svc.err = identity.ErrEmailTaken
	err := createUser(context.Background(), svc, "root@example.com", "correct horse battery", user.RoleAdmin, true, io.Discard)
	assert.ErrorIs(t, err, identity.ErrEmailTaken)
}
