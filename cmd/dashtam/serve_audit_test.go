package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/eventstore/merkle"
)

// auditAPIUser registers, verifies and logs in a user through the API.
func auditAPIUser(t *testing.T, srv *identityServer, email string) (id, token string) {
	t.Helper()
	c := srv.client
	const pw = "a long and unusual passphrase"
	u := c.Do("POST", "/api/v1/users", map[string]string{"email": email, "password": pw}, "").Want(t, 201, "register "+email)
	tok := mustMailToken(t, srv.mailDir, email, identity.VerifyEmailPath)
	c.Do("POST", "/api/v1/email-verifications", map[string]string{"token": tok}, "").Want(t, 204, "verify "+email)
	login := c.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "").Want(t, 201, "login "+email)
	return u.Str("id"), login.Str("access_token")
}

// TestServeAuditAPI reads the audit trail through the real server: lists
// with filters and cursors, an event with an inclusion proof checked here
// against the signed checkpoint, checkpoints, a state as of a moment; bad
// input answers 422, other roles 403; and every use is recorded on the
// auditor's own stream.
func TestServeAuditAPI(t *testing.T) {
	srv := startIdentityServer(t)
	c := srv.client
	ctx := context.Background()
	aliceID, aliceToken := auditAPIUser(t, srv, "alice@example.com")

	const pw = "another long passphrase"
	auditor, err := srv.identity.CreateUser(ctx, "auditor@example.com", pw, user.RoleAuditor, true)
	require.NoError(t, err)
	al := c.Do("POST", "/api/v1/sessions", map[string]string{"email": "auditor@example.com", "password": pw}, "").Want(t, 201, "auditor login")
	tok := al.Str("access_token")

	c.Do("GET", "/api/v1/audit-events", nil, aliceToken).Want(t, 403, "a user is no auditor")
	c.Do("GET", "/api/v1/audit-checkpoints", nil, aliceToken).Want(t, 403, "a user is no auditor")
	c.Do("GET", "/api/v1/audit/streams/user/"+aliceID, nil, aliceToken).Want(t, 403, "a user is no auditor")

	// A checkpoint over everything so far.
	var ck eventstore.Checkpoint
	require.Eventually(t, func() bool {
		_, err := srv.checkpoints.CheckpointAll(ctx, true)
		require.NoError(t, err)
		var n int64
		require.NoError(t, srv.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
		ck, _, err = srv.store.NewestCheckpoint(ctx)
		require.NoError(t, err)
		return ck.TreeSize == n
	}, 30*time.Second, 10*time.Millisecond)

	// Alice's events, two at a time.
	var ids []string
	path := "/api/v1/audit-events?user_id=" + aliceID + "&limit=2"
	cursor := ""
	for page := 0; ; page++ {
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		r := c.Do("GET", p, nil, tok).Want(t, 200, "list alice's events")
		for _, it := range r.Body["items"].([]any) {
			e := it.(map[string]any)
			assert.Equal(t, aliceID, e["owner_id"])
			ids = append(ids, e["id"].(string))
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			break
		}
		if page == 0 {
			bad := c.Do("GET", "/api/v1/audit-events?limit=2&cursor="+url.QueryEscape(next), nil, tok).Want(t, 422, "a cursor of other filters")
			assert.Equal(t, "unprocessable", bad.Str("code"))
			assert.Contains(t, bad.Raw, `"field":"cursor"`)
		}
		cursor = next
	}
	require.GreaterOrEqual(t, len(ids), 4, "registration, verification, login attempt and success")

	first := c.Do("GET", "/api/v1/audit-events?user_id="+aliceID+"&event_type=UserRegistered", nil, tok).Want(t, 200, "by type")
	items := first.Body["items"].([]any)
	require.Len(t, items, 1)
	reg := items[0].(map[string]any)
	assert.Equal(t, "alice@example.com", reg["payload"].(map[string]any)["email"])
	c.Do("GET", "/api/v1/audit-events?actor=user:"+aliceID, nil, tok).Want(t, 200, "by actor")
	c.Do("GET", "/api/v1/audit-events?stream=user:"+aliceID+"&from=2000-01-01&to=2100-01-01", nil, tok).Want(t, 200, "by stream and range")

	for _, q := range []string{"from=yesterday", "to=2026-13-01", "from=2026-02-01&to=2026-01-01", "stream=ledger:" + aliceID,
		"stream=" + aliceID, "user_id=42", "cursor=not-a-cursor", "event_type=%20"} {
		r := c.Do("GET", "/api/v1/audit-events?"+q, nil, tok).Want(t, 422, q)
		assert.Equal(t, "unprocessable", r.Str("code"), q)
	}

	// One event with its proof, checked here.
	d := c.Do("GET", "/api/v1/audit-events/"+reg["id"].(string), nil, tok).Want(t, 200, "one event")
	proof := d.Body["inclusion_proof"].(map[string]any)
	assert.Equal(t, true, proof["verified"])
	hash, err := hex.DecodeString(d.Str("hash"))
	require.NoError(t, err)
	pos := int64(d.Body["position"].(float64))
	var path2 []merkle.Hash
	for _, h := range proof["path"].([]any) {
		x, err := merkle.ParseHash(h.(string))
		require.NoError(t, err)
		path2 = append(path2, x)
	}
	ckJSON, err := json.Marshal(proof["checkpoint"])
	require.NoError(t, err)
	var signed eventstore.Checkpoint
	require.NoError(t, json.Unmarshal(ckJSON, &signed))
	signer, err := eventstore.ParseSigningKey(srv.env["DASHTAM_AUDIT_SIGNING_KEY"])
	require.NoError(t, err)
	require.NoError(t, signed.VerifySignature(eventstore.TrustedKeys{signer.PublicKey()}))
	leaf := merkle.LeafHash(eventstore.LeafData(pos, hash))
	require.NoError(t, merkle.VerifyInclusion(uint64(proof["leaf_index"].(float64)), uint64(signed.TreeSize), leaf, path2, signed.Root))
	c.Do("GET", "/api/v1/audit-events/00000000-0000-0000-0000-000000000001", nil, tok).Want(t, 404, "no such event")

	// Checkpoints.
	list := c.Do("GET", "/api/v1/audit-checkpoints?limit=1", nil, tok).Want(t, 200, "checkpoints")
	top := list.Body["items"].([]any)[0].(map[string]any)
	assert.Equal(t, float64(ck.Seq), top["seq"])
	one := c.Do("GET", "/api/v1/audit-checkpoints/"+itoa(ck.Seq), nil, tok).Want(t, 200, "one checkpoint")
	assert.Equal(t, ck.Root.String(), one.Str("root"))
	assert.Equal(t, base64.StdEncoding.EncodeToString(ck.Signature), one.Str("signature"))
	c.Do("GET", "/api/v1/audit-checkpoints/999999", nil, tok).Want(t, 404, "no such checkpoint")
	c.Do("GET", "/api/v1/audit-checkpoints?cursor="+url.QueryEscape(strings.Repeat("x", 10)), nil, tok).Want(t, 422, "a bad cursor")

	// Alice's state now and before she logged in.
	st := c.Do("GET", "/api/v1/audit/streams/user/"+aliceID, nil, tok).Want(t, 200, "alice now")
	state := st.Body["state"].(map[string]any)
	assert.Equal(t, []any{"user"}, state["roles"])
	assert.Len(t, state["sessions"], 1)
	regAt := reg["recorded_at"].(string)
	early := c.Do("GET", "/api/v1/audit/streams/user/"+aliceID+"?as_of="+url.QueryEscape(regAt), nil, tok).Want(t, 200, "alice at registration")
	assert.Equal(t, float64(2), early.Body["version"], "the registration and its verification request, recorded together")
	assert.Less(t, early.Body["version"].(float64), st.Body["version"].(float64))
	assert.Equal(t, false, early.Body["state"].(map[string]any)["email_verified"])
	c.Do("GET", "/api/v1/audit/streams/user/"+aliceID+"?as_of=2000-01-01", nil, tok).Want(t, 404, "before she existed")
	c.Do("GET", "/api/v1/audit/streams/ledger/"+aliceID, nil, tok).Want(t, 422, "an unknown type")
	c.Do("GET", "/api/v1/audit/streams/account/"+aliceID, nil, tok).Want(t, 404, "no such account")
	c.Do("GET", "/api/v1/audit/streams/user/"+aliceID+"?as_of=soon", nil, tok).Want(t, 422, "a malformed as_of")

	// Every answered use was recorded on the auditor's stream, with its filters.
	rows, err := srv.pool.Query(ctx, `SELECT payload::text FROM events WHERE stream_id = $1 AND event_type = 'UserAuditTrailViewed' ORDER BY version`, auditor.ID)
	require.NoError(t, err)
	var views []user.UserAuditTrailViewed
	for rows.Next() {
		var raw string
		require.NoError(t, rows.Scan(&raw))
		var v user.UserAuditTrailViewed
		require.NoError(t, json.Unmarshal([]byte(raw), &v))
		views = append(views, v)
	}
	require.NoError(t, rows.Err())
	require.GreaterOrEqual(t, len(views), 12)
	assert.Equal(t, "GET /api/v1/audit-events", views[0].Route)
	assert.Equal(t, map[string]string{"user_id": aliceID, "limit": "2"}, views[0].Filters)
	var sawEvent, sawState bool
	for _, v := range views {
		sawEvent = sawEvent || v.Resource == "event:"+reg["id"].(string)
		sawState = sawState || (v.Resource == "user:"+aliceID && v.Filters["as_of"] == regAt)
	}
	assert.True(t, sawEvent, "the event looked at is named")
	assert.True(t, sawState, "the stream and moment looked at are named")
	var denied int
	require.NoError(t, srv.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'UserAccessDenied'`, aliceID).Scan(&denied))
	assert.Equal(t, 3, denied, "alice's attempts are recorded as refusals")
}
