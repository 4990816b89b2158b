package main

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/projections/financialtest"
	"github.com/dashtam/dashtam/web"
)

// TestDataEndToEnd runs the data API in the real server: an authenticated
// command's answer carries its position (X-Dashtam-Position and, for a connection
// command, the body's position), and a read naming it sees the change; events a sync would record are read
// back through min_position and paged with the server's cursors; another
// user sees none of it.
func TestDataEndToEnd(t *testing.T) {
	t.Parallel()
	s := startConnectionsServer(t)
	// A public command records events too, but says nothing of them: the
	// position would tell a new address from a registered one.
	register := s.api("POST", "/api/v1/users", map[string]string{"email": "pos@example.com", "password": "a long and unusual passphrase"}, "")
	register.Want(t, 201, "register")
	assert.Empty(t, register.Header.Get(web.HeaderPosition), "no position on a public operation")

	token := s.mustUser(t, "data@example.com")
	other := s.mustUser(t, "other@example.com")
	me := s.api("GET", "/api/v1/users/me", nil, token).Want(t, 200, "me")
	userID, err := uuid.Parse(me.Str("id"))
	require.NoError(t, err)

	// A command's body carries the position too, and a read that names it
	// sees the command's change.
	created := s.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Positioned"}, token).
		Want(t, 201, "create a connection")
	header, err := strconv.ParseInt(created.Header.Get(web.HeaderPosition), 10, 64)
	require.NoError(t, err, "a command answers its position")
	assert.Equal(t, float64(header), created.Body["position"], "the body's position is the header's")
	listed := s.api("GET", "/api/v1/connections?min_position="+strconv.FormatInt(header, 10), nil, token).
		Want(t, 200, "connections at the command's position")
	listedItems, _ := listed.Body["items"].([]any)
	require.Len(t, listedItems, 1)
	assert.Equal(t, created.Str("id"), listedItems[0].(map[string]any)["id"])
	got := s.api("GET", "/api/v1/connections/"+created.Str("id"), nil, token).Want(t, 200, "a read")
	assert.NotContains(t, got.Body, "position", "a read carries no position")

	l := financialtest.New(t, s.store)
	conn := l.Connection(userID)
	acct := l.Account(conn, userID, financialtest.Details("e2e", commands.AccountTypeChecking), financialtest.Epoch)
	l.Balance(userID, acct, "12.5", "12.5", "USD", financialtest.Epoch)
	for i := range 5 {
		l.Transaction(userID, acct, conn, financialtest.Tx("e-"+strconv.Itoa(i), "2026-02-0"+strconv.Itoa(i+1), commands.TransactionTypeDeposit, "1.5"), financialtest.Epoch)
	}
	at := "?min_position=" + strconv.FormatInt(l.LastPosition(), 10)

	accounts := s.api("GET", "/api/v1/accounts"+at, nil, token).Want(t, 200, "accounts at the position")
	items, _ := accounts.Body["items"].([]any)
	require.Len(t, items, 1)
	assert.Equal(t, "12.5", items[0].(map[string]any)["balance"])

	path := "/api/v1/accounts/" + acct.String() + "/transactions?limit=2"
	var seen int
	for next := path; next != ""; {
		page := s.api("GET", next, nil, token).Want(t, 200, "a page")
		items, _ := page.Body["items"].([]any)
		seen += len(items)
		next = ""
		if c, ok := page.Body["next_cursor"].(string); ok {
			next = path + "&cursor=" + url.QueryEscape(c)
		}
	}
	assert.Equal(t, 5, seen)

	s.api("GET", "/api/v1/accounts/"+acct.String()+at, nil, other).Want(t, 404, "another user's account")
	theirs := s.api("GET", "/api/v1/transactions"+at, nil, other).Want(t, 200, "another user's list")
	assert.Empty(t, theirs.Body["items"])
}
