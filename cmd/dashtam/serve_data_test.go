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

// TestDataEndToEnd runs the data API in the real server: a command's
// answer carries X-Dashtam-Position; events a sync would record are read
// back through min_position and paged with the server's cursors; another
// user sees none of it.
func TestDataEndToEnd(t *testing.T) {
	t.Parallel()
	s := startConnectionsServer(t)
	register := s.api("POST", "/api/v1/users", map[string]string{"email": "pos@example.com", "password": "a long and unusual passphrase"}, "")
	register.Want(t, 201, "register")
	pos, err := strconv.ParseInt(register.Header.Get(web.HeaderPosition), 10, 64)
	require.NoError(t, err, "a command answers its position")
	assert.Positive(t, pos)

	token := s.mustUser(t, "data@example.com")
	other := s.mustUser(t, "other@example.com")
	me := s.api("GET", "/api/v1/users/me", nil, token).Want(t, 200, "me")
	userID, err := uuid.Parse(me.Str("id"))
	require.NoError(t, err)

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
