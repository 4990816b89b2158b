package projections

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/aggregates/transaction"
)

// TestTransactionPayloadReadsTheAggregatesEvents: the projector's lean
// payload reads every field of the aggregate's transaction events as the
// aggregate writes them, decimals as their text.
func TestTransactionPayloadReadsTheAggregatesEvents(t *testing.T) {
	dec := func(s string) *decimal.Decimal { d := decimal.RequireFromString(s); return &d }
	data := transaction.Data{ProviderTransactionID: "p-1", Type: "buy", Subtype: "TRADE", Pending: true,
		Amount: decimal.RequireFromString("-1502.510"), Currency: "USD", Description: `<b>"AAPL" & co</b>`,
		Date: "2026-02-02", SettlementDate: "2026-02-04", Symbol: "AAPL", Quantity: dec("10"), UnitPrice: dec("150.25"),
		Commission: dec("0"), Fees: dec("0.01"), Raw: json.RawMessage(`{"amount": 1, "nested": {"x": [1, 2]}}`)}
	acct, conn := uuid.New(), uuid.New()
	for _, e := range []any{
		transaction.TransactionRecorded{TransactionID: uuid.New(), AccountID: acct, ConnectionID: conn, SyncID: uuid.New(), Data: data, At: time.Now()},
		transaction.TransactionUpdated{TransactionID: uuid.New(), SyncID: uuid.New(), Data: data, Changed: []string{"status"}, At: time.Now()},
	} {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var p txPayload
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if _, recorded := e.(transaction.TransactionRecorded); recorded && (p.AccountID != acct || p.ConnectionID != conn) {
			t.Errorf("ids: %v %v", p.AccountID, p.ConnectionID)
		}
		want := txPayload{AccountID: p.AccountID, ConnectionID: p.ConnectionID, ProviderTransactionID: "p-1", Type: "buy",
			Subtype: "TRADE", Pending: true, Amount: payloadDecimal(data.Amount.String()), Currency: "USD",
			Description: data.Description, Date: "2026-02-02", SettlementDate: "2026-02-04", Symbol: "AAPL",
			Quantity: "10", UnitPrice: "150.25", Commission: "0", Fees: "0.01"}
		if p != want {
			t.Errorf("%T read as %+v, want %+v", e, p, want)
		}
	}
	var p txPayload
	if err := json.Unmarshal([]byte(`{"amount": -3.5, "fees": null}`), &p); err != nil || p.Amount != "-3.5" || p.Fees != "" {
		t.Errorf("a number and a null: %+v, %v", p, err)
	}
	for _, bad := range []string{`{"amount": "1e5"}`, `{"amount": "abc"}`, `{"amount": ""}`, `{"amount": "1."}`, `{"amount": ".5"}`, `{"amount": "1.2.3"}`, `{"amount": true}`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
