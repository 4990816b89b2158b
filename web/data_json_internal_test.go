package web

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web/api"
)

// TestTransactionPageEncodesLikeTheGeneratedTypes: the hand-written page
// encoder writes exactly the bytes encoding/json writes for the generated
// api.TransactionList, whatever the text holds (quotes, controls, HTML,
// line separators, invalid UTF-8) and whichever optional fields are set.
func TestTransactionPageEncodesLikeTheGeneratedTypes(t *testing.T) {
	var tricky []string
	for c := range 0x80 {
		tricky = append(tricky, "a"+string(rune(c))+"b")
	}
	tricky = append(tricky, "", `<script>"x"&'y'</script>`, "line\u2028para\u2029", "bad\xffutf8\xc3", "naïve café 💶", strings.Repeat("long ", 50))
	str := func(s string) *string { return &s }
	var views []projections.TransactionView
	for i, s := range tricky {
		v := projections.TransactionView{ID: uuid.New(), AccountID: uuid.New(), ProviderTransactionID: s, Type: "buy",
			Subtype: s, Status: "posted", Amount: "-12.50", Currency: "USD", Description: s, Date: "2026-02-03"}
		if i%2 == 0 {
			v.SettlementDate, v.Symbol, v.Quantity, v.UnitPrice, v.Commission, v.Fees = str("2026-02-05"), str(s), str("10"), str("1.5"), str("0"), str("0.01")
		}
		if i%3 == 0 {
			v.Subtype = ""
		}
		views = append(views, v)
	}
	for _, next := range []*string{nil, str("abc-_")} {
		for _, page := range [][]projections.TransactionView{nil, views[:1], views} {
			want := api.TransactionList{Items: make([]api.Transaction, len(page)), NextCursor: next}
			for i, v := range page {
				want.Items[i] = transactionJSON(v)
			}
			var buf bytes.Buffer
			if err := json.NewEncoder(&buf).Encode(want); err != nil {
				t.Fatal(err)
			}
			got := transactionPage{items: page, next: next}.appendJSON(nil)
			if !bytes.Equal(got, buf.Bytes()) {
				t.Fatalf("page of %d differs:\n got %s\nwant %s", len(page), got, buf.Bytes())
			}
			if !utf8.Valid(got) {
				t.Fatal("invalid UTF-8 written")
			}
		}
	}
}
