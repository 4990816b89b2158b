package syncs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// account brings one account up to date: it fetches the account's
// transactions and holdings in one paced call (the window's days padded
// by one on each side, since providers cut days in their own time zones),
// then writes the account, the transactions in batches and the removals,
// each in its own unit of work. An account seen for the first time, or
// open again, is fetched as far back as a first sync.
func (r *run) account(ctx context.Context, pa commands.ProviderAccount, known, open bool) error {
	id := eventstore.AccountStreamID(r.connectionID, pa.ID)
	from, to := r.from, r.to
	if !open {
		from = firstWindowFrom(to)
	}
	start, end, err := fetchRange(from, to)
	if err != nil {
		return err
	}
	var (
		txs            []commands.ProviderTransaction
		holdings       []commands.ProviderHolding
		txErr, holdErr error
	)
	job := ctx
	err = r.h.caller.Call(ctx, r.connectionID, func(ctx context.Context, p commands.Provider, c commands.Credentials) error {
		if txs, txErr = p.Transactions(ctx, c, pa.ID, start, end); txErr != nil && fatal(job, txErr) {
			return txErr
		}
		if holdings, holdErr = p.Holdings(ctx, c, pa.ID); holdErr != nil && fatal(job, holdErr) {
			return holdErr
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fetch account %s: %w", id, err)
	}
	if err := r.writeAccount(ctx, id, pa, holdings, holdErr == nil); err != nil {
		if errors.Is(err, errInvalidData) {
			r.accountFailed(id, err)
			return nil
		}
		return err
	}
	if holdErr != nil {
		r.h.log.InfoContext(ctx, "sync: holdings of an account failed", "connection_id", r.connectionID, "account_id", id, "error", holdErr)
		r.accountFailed(id, holdErr)
	}
	if txErr != nil {
		r.h.log.InfoContext(ctx, "sync: transactions of an account failed", "connection_id", r.connectionID, "account_id", id, "error", txErr)
		r.accountFailed(id, txErr)
		return nil
	}
	return r.writeTransactions(ctx, id, txs, from, to, !known)
}

// writers is how many units of work of one account's batches run at once.
const writers = 2

// firstWindowFrom is where a first sync starts, FirstSyncYears before to.
func firstWindowFrom(to string) string {
	day, err := time.Parse(time.DateOnly, to)
	if err != nil {
		return to
	}
	return day.AddDate(-connection.FirstSyncYears, 0, 0).Format(time.DateOnly)
}

// fetchRange turns a window of dates (inclusive) into the instants asked
// of the provider: from a day before its first day to the end of the day
// after its last.
func fetchRange(from, to string) (time.Time, time.Time, error) {
	f, err1 := time.Parse(time.DateOnly, from)
	t, err2 := time.Parse(time.DateOnly, to)
	if err := errors.Join(err1, err2); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("sync window %s..%s: %w", from, to, err)
	}
	return f.AddDate(0, 0, -1), t.AddDate(0, 0, 2), nil
}

// writeAccount records what the provider says of the account: opened the
// first time, details, balance and holdings only when they differ.
func (r *run) writeAccount(ctx context.Context, id uuid.UUID, pa commands.ProviderAccount, holdings []commands.ProviderHolding, holdingsKnown bool) error {
	o := account.Observation{
		ConnectionID: r.connectionID, UserID: r.userID, SyncID: r.syncID,
		Details: account.Details{ProviderAccountID: pa.ID, Name: pa.Name, Type: pa.Type, Subtype: pa.Subtype,
			MaskedNumber: pa.MaskedNumber, Currency: pa.Currency, Raw: pa.Raw},
		Balance:       &account.Balance{Current: pa.Balance, Available: pa.Available, Currency: pa.Currency},
		HoldingsKnown: holdingsKnown,
	}
	for _, ph := range holdings {
		o.Holdings = append(o.Holdings, account.Holding{Symbol: ph.Symbol, Description: ph.Description, AssetType: ph.AssetType,
			Quantity: ph.Quantity, AveragePrice: ph.AveragePrice, MarketValue: ph.MarketValue, Currency: ph.Currency})
	}
	return r.unit(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		o.At = r.h.clock.Now()
		_, err := r.h.accounts.UpdateTx(ctx, tx, id, func(ctx context.Context, tx *eventstore.Tx, a *account.Account) (eventstore.Decision[account.Event], error) {
			events, err := a.Observe(o)
			if errors.Is(err, account.ErrInvalidDetails) {
				return eventstore.Decision[account.Event]{}, fmt.Errorf("account %s: %w: %w", id, errInvalidData, err)
			}
			if err != nil {
				return eventstore.Decision[account.Event]{}, err
			}
			if err := markAccount(ctx, tx, id, r.connectionID, pa.ID, true); err != nil {
				return eventstore.Decision[account.Event]{}, err
			}
			return eventstore.Decision[account.Event]{Events: events}, nil
		})
		return err
	})
}

// observed is one provider transaction as the aggregate will see it.
type observed struct {
	id          uuid.UUID
	data        transaction.Data
	fingerprint []byte
}

// transactionData maps a provider's transaction to the aggregate's data.
func transactionData(pt commands.ProviderTransaction) transaction.Data {
	d := transaction.Data{ProviderTransactionID: pt.ID, Type: pt.Type, Subtype: pt.Subtype, Pending: pt.Pending,
		Amount: pt.Amount, Currency: pt.Currency, Description: pt.Description, Date: dateOf(pt.Date),
		Symbol: pt.Symbol, Quantity: pt.Quantity, UnitPrice: pt.UnitPrice, Commission: pt.Commission, Fees: pt.Fees, Raw: pt.Raw}
	if pt.SettlementDate != nil {
		d.SettlementDate = dateOf(*pt.SettlementDate)
	}
	return d
}

// writeTransactions records the account's transactions in batches, then
// removes the pending ones of the window the provider no longer lists.
// Data the aggregate refuses is reported as the account's error, and the
// transaction it names is neither written nor removed.
//
// An account the index has never seen (fresh) has no transactions yet, so
// its batches append without reading the index first.
func (r *run) writeTransactions(ctx context.Context, accountID uuid.UUID, txs []commands.ProviderTransaction, from, to string, fresh bool) error {
	seen := make(map[uuid.UUID]bool, len(txs))
	obs := make([]observed, 0, len(txs))
	for _, pt := range txs {
		id := eventstore.TransactionStreamID(accountID, pt.ID)
		if seen[id] {
			continue
		}
		seen[id] = true
		d := transactionData(pt)
		if err := d.Validate(); err != nil {
			r.h.log.InfoContext(ctx, "sync: a transaction refused", "account_id", accountID, "transaction_id", id, "error", err)
			r.accountFailed(accountID, fmt.Errorf("transaction %s: %w: %w", id, errInvalidData, err))
			continue
		}
		fp := d.Fingerprint()
		obs = append(obs, observed{id: id, data: d, fingerprint: fp[:]})
		if !d.Pending && d.Date > r.latestPosted {
			r.latestPosted = d.Date
		}
	}
	slices.SortFunc(obs, func(a, b observed) int {
		return cmp.Or(cmp.Compare(a.data.Date, b.data.Date), cmp.Compare(a.data.ProviderTransactionID, b.data.ProviderTransactionID))
	})
	// Batches are disjoint sets of streams and index rows, so two units of
	// work write at once: on two cores, Go encodes one batch while
	// PostgreSQL inserts the other. Nothing is open while the provider is
	// called, which happened before.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(writers)
	for start := 0; start < len(obs); start += r.h.batch {
		batch := obs[start:min(start+r.h.batch, len(obs))]
		g.Go(func() error {
			var (
				counts connection.SyncCounts
				tries  int
			)
			err := r.unit(gctx, func(ctx context.Context, tx *eventstore.Tx) error {
				tries++
				var err error
				counts, err = r.writeBatch(ctx, tx, accountID, batch, fresh, tries > 1)
				return err
			})
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.counts = r.counts.Add(counts)
			r.mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return r.removeGone(ctx, accountID, seen, from, to)
}

// writeBatch decides and appends one batch of an account's transactions
// in the unit of work tx. The index tells new transactions (appended at
// version 0 without loading), unchanged ones (the same fingerprint:
// nothing to decide) and the rest, which are loaded and decided. A
// conflict (an index that disagrees with the log) makes Transact run the
// batch again, and then every transaction is loaded, so the index is
// trusted only to go faster, never for the outcome.
func (r *run) writeBatch(ctx context.Context, tx *eventstore.Tx, accountID uuid.UUID, batch []observed, fresh, safe bool) (connection.SyncCounts, error) {
	var counts connection.SyncCounts
	index := map[uuid.UUID]indexed{}
	if !fresh || safe {
		ids := make([]uuid.UUID, len(batch))
		for i, o := range batch {
			ids[i] = o.id
		}
		var err error
		if index, err = readIndexed(ctx, tx, ids); err != nil {
			return counts, err
		}
	}
	now := r.h.clock.Now()
	var (
		appends []eventstore.StreamEvent
		rows    []indexRow
		load    []observed
	)
	// fresh says the index held no row of o when this unit of work read it.
	decided := func(o observed, version int64, events []transaction.Event, fresh bool) {
		if len(events) == 0 {
			counts.Unchanged++
			return
		}
		if version == 0 {
			counts.Created++
		} else {
			counts.Updated++
		}
		appends = append(appends, eventstore.StreamEvent{Stream: r.h.transactions.Stream(o.id), ExpectedVersion: version, Event: events[0]})
		status := transaction.StatusPosted
		if o.data.Pending {
			status = transaction.StatusPending
		}
		rows = append(rows, indexRow{id: o.id, accountID: accountID, connectionID: r.connectionID, providerID: o.data.ProviderTransactionID,
			status: status, date: o.data.Date, fingerprint: o.fingerprint, fresh: fresh})
	}
	observation := func(o observed) transaction.Observation {
		return transaction.Observation{AccountID: accountID, ConnectionID: r.connectionID, SyncID: r.syncID, Data: o.data, At: now}
	}
	for _, o := range batch {
		row, known := index[o.id]
		switch {
		case safe:
			load = append(load, o)
		case !known:
			events, err := transaction.New(o.id).Observe(observation(o))
			if err != nil {
				return counts, err
			}
			decided(o, 0, events, true)
		case row.status != transaction.StatusRemoved && string(row.fingerprint) == string(o.fingerprint):
			counts.Unchanged++
		default:
			load = append(load, o)
		}
	}
	if len(load) > 0 {
		loadIDs := make([]uuid.UUID, len(load))
		for i, o := range load {
			loadIDs[i] = o.id
		}
		loaded, err := r.h.transactions.LoadMany(ctx, tx, loadIDs)
		if err != nil {
			return counts, err
		}
		for _, o := range load {
			l := loaded[o.id]
			events, err := l.State.Observe(observation(o))
			if err != nil {
				return counts, fmt.Errorf("transaction %s: %w", o.id, err)
			}
			if len(events) > 1 {
				return counts, fmt.Errorf("transaction %s: %d events decided at once", o.id, len(events))
			}
			if safe && len(events) == 0 {
				// Repair the index from the folded state, which is the truth.
				d := l.State.Data()
				fp := d.Fingerprint()
				rows = append(rows, indexRow{id: o.id, accountID: accountID, connectionID: r.connectionID, providerID: d.ProviderTransactionID,
					status: l.State.Status(), date: d.Date, fingerprint: fp[:]})
			}
			decided(o, l.Version, events, false)
		}
	}
	if _, err := tx.AppendMany(ctx, appends); err != nil {
		return counts, err
	}
	return counts, indexTransactions(ctx, tx, rows)
}

// removeGone removes the account's pending transactions dated within the
// window that the provider no longer lists: cancelled before they posted.
func (r *run) removeGone(ctx context.Context, accountID uuid.UUID, seen map[uuid.UUID]bool, from, to string) error {
	var removed int
	err := r.unit(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		removed = 0
		pending, err := pendingBetween(ctx, tx, r.connectionID, accountID, from, to)
		if err != nil {
			return err
		}
		var gone []uuid.UUID
		for _, id := range pending {
			if !seen[id] {
				gone = append(gone, id)
			}
		}
		if len(gone) == 0 {
			return nil
		}
		now := r.h.clock.Now()
		var done []uuid.UUID
		loaded, err := r.h.transactions.UpdateMany(ctx, tx, gone, func(id uuid.UUID, t *transaction.Transaction) ([]transaction.Event, error) {
			if !t.Recorded() {
				return nil, nil // an index row without a stream: dropped below
			}
			events, err := t.Remove(r.syncID, now)
			if len(events) > 0 {
				done = append(done, id)
			}
			return events, err
		})
		if err != nil {
			return err
		}
		removed = len(done)
		if err := markRemoved(ctx, tx, done); err != nil {
			return err
		}
		// The index said pending where the log says otherwise: repair it
		// from the folded state, which is the truth.
		var (
			repair []indexRow
			stray  []uuid.UUID
		)
		for _, id := range gone {
			if slices.Contains(done, id) {
				continue
			}
			t := loaded[id].State
			if !t.Recorded() {
				stray = append(stray, id)
				continue
			}
			d := t.Data()
			fp := d.Fingerprint()
			repair = append(repair, indexRow{id: id, accountID: accountID, connectionID: r.connectionID, providerID: d.ProviderTransactionID,
				status: t.Status(), date: d.Date, fingerprint: fp[:]})
		}
		if err := dropIndexed(ctx, tx, stray); err != nil {
			return err
		}
		return indexTransactions(ctx, tx, repair)
	})
	if err != nil {
		return err
	}
	r.counts.Removed += removed
	return nil
}
