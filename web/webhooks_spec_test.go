package web_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/web"
)

// webhookSamples holds one data value of each integration event type, as
// commands/fanout builds it: the test fails for a type added to the code
// without one here, and so without a look at its webhook's schema.
var webhookSamples = map[string]any{
	fanout.TypeConnectionStatusChanged: fanout.ConnectionStatusChangedData{ConnectionID: uuid.New(), ProviderSlug: "sandbox",
		Status: "failed", PreviousStatus: "active", Reason: "authentication"},
	fanout.TypeConnectionReauthorizationRequired: fanout.ConnectionReauthorizationRequiredData{ConnectionID: uuid.New(),
		ProviderSlug: "sandbox", Reason: "token_expired"},
	fanout.TypeSyncStarted: fanout.SyncStartedData{ConnectionID: uuid.New(), SyncID: uuid.New(), Trigger: "manual"},
	fanout.TypeSyncCompleted: fanout.SyncCompletedData{ConnectionID: uuid.New(), SyncID: uuid.New(), Accounts: 2,
		Counts:        fanout.SyncCounts{Created: 3, Updated: 1, Unchanged: 9, Removed: 1},
		AccountErrors: []fanout.SyncAccountError{{AccountID: uuid.New(), Reason: "provider_unavailable"}}},
	fanout.TypeSyncFailed: fanout.SyncFailedData{ConnectionID: uuid.New(), SyncID: uuid.New(), Reason: "authentication"},
	fanout.TypeAccountUpdated: fanout.AccountUpdatedData{AccountID: uuid.New(), ConnectionID: uuid.New(),
		Change: fanout.AccountDetailsChanged, Changed: []string{"name"}, AccountType: "checking", IsActive: true},
	fanout.TypeTransactionsChanged: fanout.TransactionsChangedData{AccountID: uuid.New(), ConnectionID: uuid.New(),
		SyncID: uuid.New(), Added: 2, Modified: 1, Removed: 0, Cursor: "c"},
	fanout.TypeHoldingsChanged: fanout.HoldingsChangedData{AccountID: uuid.New(), ConnectionID: uuid.New(), SyncID: uuid.New(), Holdings: 4},
	fanout.TypeWebhookTest:     fanout.WebhookTestData{WebhookID: uuid.New()},
}

// TestOpenAPIWebhooksDescribeEveryIntegrationEvent: the served document is
// OpenAPI 3.1 with a `webhooks` section (and no `x-webhooks`) holding one
// POST per integration event type the code sends — every derived type and
// webhook.test — with the Standard Webhooks headers, and each body schema
// accepts that type's envelope exactly as fanout.Event.Marshal writes it,
// and refuses it under any other type's webhook.
func TestOpenAPIWebhooksDescribeEveryIntegrationEvent(t *testing.T) {
	ts := MustServer(t, web.Options{})
	r := MustGet(t, ts.URL+"/openapi.json")
	require.Equal(t, http.StatusOK, r.Status)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(r.Body, &raw))
	assert.NotContains(t, raw, "x-webhooks")
	doc, err := openapi3.NewLoader().LoadFromData(r.Body)
	require.NoError(t, err)
	require.True(t, doc.IsOpenAPI31OrLater(), doc.OpenAPI)

	types := append(slices.Clone(fanout.Types), fanout.TypeWebhookTest)
	names := make([]string, 0, len(doc.Webhooks))
	for name := range doc.Webhooks {
		names = append(names, name)
	}
	assert.ElementsMatch(t, types, names, "one webhook per integration event type, no other")

	bodies := map[string][]byte{}
	for _, typ := range types {
		data, ok := webhookSamples[typ]
		require.True(t, ok, "no sample data for %s: add one above", typ)
		b, err := fanout.Event{ID: uuid.New(), Type: typ, Version: fanout.Version, UserID: uuid.New(), Position: 4211,
			Timestamp: time.Date(2026, 11, 29, 22, 47, 1, 520000000, time.UTC), Data: data}.Marshal()
		require.NoError(t, err)
		bodies[typ] = b
	}
	for _, typ := range types {
		item := doc.Webhooks[typ]
		require.NotNil(t, item, typ)
		require.NotNil(t, item.Post, "%s is a POST", typ)
		assert.Len(t, item.Operations(), 1, "%s is only a POST", typ)
		headers := map[string]bool{}
		for _, p := range item.Post.Parameters {
			if p.Value.In == openapi3.ParameterInHeader && p.Value.Required {
				headers[p.Value.Name] = true
			}
		}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			assert.True(t, headers[h], "%s requires header %s", typ, h)
		}
		require.NotNil(t, item.Post.RequestBody, typ)
		media := item.Post.RequestBody.Value.Content.Get("application/json")
		require.NotNil(t, media, "%s sends JSON", typ)
		schema := media.Schema.Value
		for _, other := range types {
			var body any
			require.NoError(t, json.Unmarshal(bodies[other], &body))
			err := schema.VisitJSON(body, openapi3.EnableJSONSchema2020())
			if other == typ {
				assert.NoError(t, err, "%s's schema refuses its own event %s", typ, bodies[other])
			} else {
				assert.Error(t, err, "%s's schema accepts a %s", typ, other)
			}
		}
	}
}
