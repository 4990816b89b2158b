package transaction

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

var (
	t0   = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tid  = uuid.MustParse("00000000-0000-0000-0000-00000000007a")
	aid  = uuid.MustParse("00000000-0000-0000-0000-0000000000ac")
	cid  = uuid.MustParse("00000000-0000-0000-0000-0000000000cc")
	s1   = uuid.MustParse("00000000-0000-0000-0000-0000000000f1")
	s2   = uuid.MustParse("00000000-0000-0000-0000-0000000000f2")
	fee  = decimal.RequireFromString("0.65")
	pend = Data{ProviderTransactionID: "42", Type: "withdrawal", Subtype: "CARD", Pending: true,
		Amount: decimal.RequireFromString("-12.50"), Currency: "USD", Description: "Coffee", Date: "2026-02-27"}
)

func posted() Data { d := pend; d.Pending = false; d.SettlementDate = "2026-03-01"; return d }

func recorded(d Data) []Event {
	return []Event{TransactionRecorded{TransactionID: tid, AccountID: aid, ConnectionID: cid, SyncID: s1, Data: d, At: t0}}
}

func obs(d Data) Observation {
	return Observation{AccountID: aid, ConnectionID: cid, SyncID: s2, Data: d, At: t0.Add(time.Hour)}
}

func TestObserve(t *testing.T) {
	amount := pend
	amount.Amount = decimal.RequireFromString("-12.5000") // the same number, spelled otherwise
	corrected := pend
	corrected.Amount = decimal.RequireFromString("-14.00")
	rawOnly := pend
	rawOnly.Raw = []byte(`{"new":"field"}`)
	trade := Data{ProviderTransactionID: "t1", Type: "buy", Amount: decimal.RequireFromString("-1000.65"), Currency: "USD",
		Date: "2026-02-02", Symbol: "VTI", Commission: &fee}
	noFee := trade
	noFee.Commission = nil
	for _, c := range []struct {
		name  string
		given []Event
		data  Data
		then  []Event
		err   error
	}{
		{name: "first sight", data: pend, then: []Event{TransactionRecorded{TransactionID: tid, AccountID: aid, ConnectionID: cid, SyncID: s2, Data: pend, At: t0.Add(time.Hour)}}},
		{name: "same again", given: recorded(pend), data: pend},
		{name: "same amount spelled otherwise", given: recorded(pend), data: amount},
		{name: "raw record only", given: recorded(pend), data: rawOnly},
		{name: "pending posts", given: recorded(pend), data: posted(),
			then: []Event{TransactionUpdated{TransactionID: tid, SyncID: s2, Data: posted(), Changed: []string{"status", "settlement_date"}, At: t0.Add(time.Hour)}}},
		{name: "corrected amount", given: recorded(pend), data: corrected,
			then: []Event{TransactionUpdated{TransactionID: tid, SyncID: s2, Data: corrected, Changed: []string{"amount"}, At: t0.Add(time.Hour)}}},
		{name: "commission dropped", given: recorded(trade), data: noFee,
			then: []Event{TransactionUpdated{TransactionID: tid, SyncID: s2, Data: noFee, Changed: []string{"commission"}, At: t0.Add(time.Hour)}}},
		{name: "removed comes back", given: append(recorded(pend), TransactionRemoved{TransactionID: tid, SyncID: s1, Reason: ReasonDisappeared, At: t0}), data: pend,
			then: []Event{TransactionUpdated{TransactionID: tid, SyncID: s2, Data: pend, Changed: []string{"status"}, At: t0.Add(time.Hour)}}},
		{name: "no id", data: Data{Type: "fee", Currency: "USD", Date: "2026-01-01"}, err: ErrInvalidData},
		{name: "bad date", data: Data{ProviderTransactionID: "x", Type: "fee", Currency: "USD", Date: "01/02/2026"}, err: ErrInvalidData},
		{name: "no currency", data: Data{ProviderTransactionID: "x", Type: "fee", Date: "2026-01-01"}, err: ErrInvalidData},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx := New(tid)
			tx.Apply(c.given...)
			got, err := tx.Observe(obs(c.data))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.then) {
				t.Fatalf("events:\n got %#v\nwant %#v", got, c.then)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	tx := New(tid)
	if _, err := tx.Remove(s2, t0); !errors.Is(err, ErrNotRecorded) {
		t.Fatalf("remove nothing: %v", err)
	}
	tx.Apply(recorded(pend)...)
	got, err := tx.Remove(s2, t0)
	want := []Event{TransactionRemoved{TransactionID: tid, SyncID: s2, Reason: ReasonDisappeared, At: t0}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("remove pending: %v %v", got, err)
	}
	tx.Apply(got...)
	if tx.Status() != StatusRemoved {
		t.Fatalf("status %s", tx.Status())
	}
	if again, _ := tx.Remove(s2, t0); again != nil {
		t.Fatal("removed twice")
	}
	p := New(tid)
	p.Apply(recorded(posted())...)
	if got, _ := p.Remove(s2, t0); got != nil {
		t.Fatal("a posted transaction was removed")
	}
	if p.Status() != StatusPosted {
		t.Fatalf("status %s", p.Status())
	}
}
