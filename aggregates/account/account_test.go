package account

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

var (
	t0  = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	aid = uuid.MustParse("00000000-0000-0000-0000-0000000000ac")
	cid = uuid.MustParse("00000000-0000-0000-0000-0000000000cc")
	uid = uuid.MustParse("00000000-0000-0000-0000-0000000000aa")
	s1  = uuid.MustParse("00000000-0000-0000-0000-0000000000f1")
	det = Details{ProviderAccountID: "p1", Name: "Checking", Type: "checking", MaskedNumber: "1234", Currency: "USD"}
	bal = Balance{Current: decimal.RequireFromString("100.00"), Currency: "USD"}
	vti = Holding{Symbol: "VTI", Quantity: decimal.RequireFromString("10"), MarketValue: decimal.RequireFromString("2500"), Currency: "USD"}
	bnd = Holding{Symbol: "BND", Quantity: decimal.RequireFromString("5"), MarketValue: decimal.RequireFromString("370"), Currency: "USD"}
)

func opened() []Event {
	return []Event{AccountOpened{AccountID: aid, ConnectionID: cid, UserID: uid, SyncID: s1, Details: det, At: t0}}
}

func look(d Details, b *Balance, h []Holding, known bool) Observation {
	return Observation{ConnectionID: cid, UserID: uid, SyncID: s1, Details: d, Balance: b, Holdings: h, HoldingsKnown: known, At: t0}
}

func TestObserve(t *testing.T) {
	same := bal
	same.Current = decimal.RequireFromString("100")
	moved := bal
	moved.Current = decimal.RequireFromString("90.5")
	renamed := det
	renamed.Name = "Everyday"
	for _, c := range []struct {
		name  string
		given []Event
		obs   Observation
		then  []Event
		err   error
	}{
		{name: "first sight", obs: look(det, &bal, nil, true), then: []Event{
			AccountOpened{AccountID: aid, ConnectionID: cid, UserID: uid, SyncID: s1, Details: det, At: t0},
			AccountBalanceRecorded{AccountID: aid, SyncID: s1, Balance: bal, At: t0}}},
		{name: "same again", given: append(opened(), AccountBalanceRecorded{AccountID: aid, SyncID: s1, Balance: bal, At: t0}),
			obs: look(det, &same, nil, true)},
		{name: "balance moved", given: append(opened(), AccountBalanceRecorded{AccountID: aid, SyncID: s1, Balance: bal, At: t0}),
			obs: look(det, &moved, nil, false), then: []Event{AccountBalanceRecorded{AccountID: aid, SyncID: s1, Balance: moved, At: t0}}},
		{name: "renamed", given: opened(), obs: look(renamed, nil, nil, false),
			then: []Event{AccountUpdated{AccountID: aid, SyncID: s1, Details: renamed, Changed: []string{"name"}, At: t0}}},
		{name: "holdings in any order", given: append(opened(), AccountHoldingsRecorded{AccountID: aid, SyncID: s1, Holdings: []Holding{bnd, vti}, At: t0}),
			obs: look(det, nil, []Holding{vti, bnd}, true)},
		{name: "holdings change", given: append(opened(), AccountHoldingsRecorded{AccountID: aid, SyncID: s1, Holdings: []Holding{bnd, vti}, At: t0}),
			obs: look(det, nil, []Holding{vti}, true), then: []Event{AccountHoldingsRecorded{AccountID: aid, SyncID: s1, Holdings: []Holding{vti}, At: t0}}},
		{name: "holdings sold out", given: append(opened(), AccountHoldingsRecorded{AccountID: aid, SyncID: s1, Holdings: []Holding{vti}, At: t0}),
			obs: look(det, nil, nil, true), then: []Event{AccountHoldingsRecorded{AccountID: aid, SyncID: s1, Holdings: []Holding{}, At: t0}}},
		{name: "never held anything", given: opened(), obs: look(det, nil, nil, true)},
		{name: "reopened", given: append(opened(), AccountClosed{AccountID: aid, Reason: ClosedDisappeared, At: t0}), obs: look(det, nil, nil, false),
			then: []Event{AccountUpdated{AccountID: aid, SyncID: s1, Details: det, Changed: []string{"is_active"}, At: t0}}},
		{name: "no currency", obs: look(Details{ProviderAccountID: "p", Type: "checking"}, nil, nil, false), err: ErrInvalidDetails},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := New(aid)
			a.Apply(c.given...)
			got, err := a.Observe(c.obs)
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

func TestClose(t *testing.T) {
	a := New(aid)
	if _, err := a.Close(ClosedDisconnected, t0); !errors.Is(err, ErrNotOpened) {
		t.Fatal(err)
	}
	a.Apply(opened()...)
	got, err := a.Close(ClosedDisconnected, t0)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	a.Apply(got...)
	if a.Active() {
		t.Fatal("still active")
	}
	if again, _ := a.Close(ClosedDisconnected, t0); again != nil {
		t.Fatal("closed twice")
	}
}
