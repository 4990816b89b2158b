package projections

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// writeFinancial sends the batch's writes, one statement per table and
// purpose, in one round trip, and reports the first failure (which the
// consumer classifies: its SQLSTATE travels wrapped).
func writeFinancial(ctx context.Context, tx pgx.Tx, t TableNames, accts *accountFold, txs *transactionFold, owners []connectionOwner) error {
	b := &pgx.Batch{}
	var what []string
	queue := func(name, sql string, args ...any) {
		b.Queue(sql, args...)
		what = append(what, name)
	}
	gained := queueAccounts(t, accts, queue)
	upsert := txs.order
	if len(txs.order) >= copyMinRows {
		// A large batch (a sync's, a rebuild's): send the accounts now,
		// COPY the transactions new to the table, upsert only the others
		// (below).
		var err error
		if upsert, err = copyNewTransactions(ctx, tx, t, txs, b, what); err != nil {
			return err
		}
		b, what = &pgx.Batch{}, nil
	}
	queueTransactions(t, txs, upsert, queue)
	if len(gained) > 0 {
		// Transactions recorded before their account was opened (a parked
		// opening retried later) take its owner now.
		ids, users := make([]uuid.UUID, len(gained)), make([]uuid.UUID, len(gained))
		for i, a := range gained {
			ids[i], users[i] = a.id, a.userID.Bytes
		}
		queue("give transactions their owner", fmt.Sprintf(`UPDATE %s AS t SET user_id = u.user_id
			FROM unnest($1::uuid[], $2::uuid[]) AS u(account_id, user_id)
			WHERE t.account_id = u.account_id AND t.user_id IS NULL`, t.Of(transactionsTable)), ids, users)
	}
	queueHistory(t, accts.history, queue)
	queueHoldings(t, accts, queue)
	if len(owners) > 0 {
		ids, users := make([]uuid.UUID, len(owners)), make([]uuid.UUID, len(owners))
		for i, o := range owners {
			ids[i], users[i] = o.connectionID, o.userID
		}
		queue("insert connection owners", fmt.Sprintf(`INSERT INTO %s (connection_id, user_id)
			SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT (connection_id) DO NOTHING`, t.Of(connectionOwnersTable)), ids, users)
	}
	if b.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	for _, name := range what {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write %s batch: %w", FinancialDataName, err)
	}
	return nil
}

// queueAccounts queues the upsert of every changed account row, whole (the
// fold started from the stored row), and returns the rows that gained
// their owner in this batch.
func queueAccounts(t TableNames, f *accountFold, queue func(string, string, ...any)) []*accountRow {
	var changed, gained []*accountRow
	for _, id := range f.order {
		a := f.rows[id]
		if !a.changed {
			continue
		}
		changed = append(changed, a)
		if a.userID.Valid && !a.ownerWas {
			gained = append(gained, a)
		}
	}
	n := len(changed)
	if n == 0 {
		return nil
	}
	var (
		ids                                     = make([]uuid.UUID, n)
		conns, users                            = make([]pgtype.UUID, n), make([]pgtype.UUID, n)
		pas, names, types, subtypes, l4s, curs  = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		bals, avails, bcurs                     = make([]*string, n), make([]*string, n), make([]*string, n)
		bats, synced, opened, hats              = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		active                                  = make([]bool, n)
		dvs, avs, bvs, hvs, versions, positions = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i, a := range changed {
		ids[i], conns[i], users[i] = a.id, a.connectionID, a.userID
		pas[i], names[i], types[i], subtypes[i], l4s[i], curs[i] = a.providerAccountID, a.name, a.accountType, a.subtype, a.last4, a.currency
		bals[i], avails[i], bcurs[i] = a.balance, a.available, a.balanceCurrency
		bats[i], synced[i], opened[i], hats[i] = a.balanceAt, a.lastSyncedAt, a.openedAt, a.holdingsAt
		active[i] = a.active
		dvs[i], avs[i], bvs[i], hvs[i], versions[i], positions[i] = a.detailsVersion, a.activeVersion, a.balanceVersion, a.holdingsVersion, a.version, a.updatedPosition
	}
	queue("upsert accounts", fmt.Sprintf(`
INSERT INTO %s AS a (id, connection_id, user_id, provider_account_id, name, account_type, subtype, account_number_last4,
    currency, balance, available_balance, balance_currency, balance_at, is_active, last_synced_at, opened_at, holdings_at,
    details_version, active_version, balance_version, holdings_version, version, updated_position)
SELECT u.id, u.conn, u.usr, u.pa, u.name, u.typ, u.sub, u.l4, u.cur, u.bal::numeric, u.avail::numeric, u.bcur, u.bat,
       u.active, u.synced, u.opened, u.hat, u.dv, u.av, u.bv, u.hv, u.v, u.pos
  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
              $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::boolean[], $15::timestamptz[], $16::timestamptz[],
              $17::timestamptz[], $18::bigint[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[], $23::bigint[])
       AS u(id, conn, usr, pa, name, typ, sub, l4, cur, bal, avail, bcur, bat, active, synced, opened, hat, dv, av, bv, hv, v, pos)
ON CONFLICT (id) DO UPDATE SET
    connection_id = excluded.connection_id, user_id = excluded.user_id,
    provider_account_id = excluded.provider_account_id, name = excluded.name, account_type = excluded.account_type,
    subtype = excluded.subtype, account_number_last4 = excluded.account_number_last4, currency = excluded.currency,
    balance = excluded.balance, available_balance = excluded.available_balance, balance_currency = excluded.balance_currency,
    balance_at = excluded.balance_at, is_active = excluded.is_active, last_synced_at = excluded.last_synced_at,
    opened_at = excluded.opened_at, holdings_at = excluded.holdings_at, details_version = excluded.details_version,
    active_version = excluded.active_version, balance_version = excluded.balance_version,
    holdings_version = excluded.holdings_version, version = excluded.version, updated_position = excluded.updated_position`,
		t.Of(accountsTable)),
		ids, conns, users, pas, names, types, subtypes, l4s, curs, bals, avails, bcurs, bats, active, synced, opened, hats,
		dvs, avs, bvs, hvs, versions, positions)
	return gained
}

// txDataColumns are the columns a transaction's latest data owns: an
// upsert takes each from the newer data version.
var txDataColumns = []string{"provider_transaction_id", "transaction_type", "subtype", "pending", "amount", "currency",
	"description", "transaction_date", "settlement_date", "symbol", "quantity", "unit_price", "commission", "fees"}

// queueTransactions queues the upsert of the batch's transactions in
// order (all of them but in a rebuild, see copyNewTransactions) in one
// statement. The owner comes from the account row (written just before, in
// the same transaction); data and state move only to newer stream
// versions, so a delta applied again, or late, changes nothing it should
// not. The arrays are of the types pgx encodes without reflection ([16]byte
// ids, strings, bools, int64s), with the zero value standing for NULL.
func queueTransactions(t TableNames, f *transactionFold, order []uuid.UUID, queue func(string, string, ...any)) {
	n := len(order)
	if n == 0 {
		return
	}
	var (
		ids, accts, conns                   = make([][16]byte, n), make([][16]byte, n), make([][16]byte, n)
		ptids, types, subtypes, curs, descs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		amounts, dates, settles, symbols    = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		qtys, prices, comms, fees           = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		pending, removed, hasData           = make([]bool, n), make([]bool, n), make([]bool, n)
		dataVersions, stateVersions         = make([]int64, n), make([]int64, n)
		mins, maxs                          = make([]int64, n), make([]int64, n)
	)
	for i, id := range order {
		d := f.rows[id]
		ids[i], accts[i], conns[i] = d.id, d.accountID, d.connectionID
		removed[i], stateVersions[i], dataVersions[i], mins[i], maxs[i] = d.removed, d.stateVersion, d.dataVersion, d.minPos, d.maxPos
		if x := d.data; x != nil {
			hasData[i] = true
			ptids[i], types[i], subtypes[i], curs[i], descs[i] = x.ProviderTransactionID, x.Type, x.Subtype, x.Currency, x.Description
			amounts[i], dates[i], settles[i], symbols[i] = string(x.Amount), x.Date, x.SettlementDate, x.Symbol
			qtys[i], prices[i], comms[i], fees[i] = string(x.Quantity), string(x.UnitPrice), string(x.Commission), string(x.Fees)
			pending[i] = x.Pending
		}
	}
	set := ""
	for _, c := range txDataColumns {
		set += fmt.Sprintf("\n    %[1]s = CASE WHEN excluded.data_version > t.data_version THEN excluded.%[1]s ELSE t.%[1]s END,", c)
	}
	// Rows without data (only a removal in the batch) hold NULLs until
	// their data arrives; present text is kept as written, empty included.
	queue("upsert transactions", fmt.Sprintf(`
INSERT INTO %[1]s AS t (id, account_id, connection_id, user_id, provider_transaction_id, transaction_type, subtype,
    pending, removed, amount, currency, description, transaction_date, settlement_date, symbol, quantity, unit_price,
    commission, fees, data_version, state_version, created_position, updated_position)
SELECT u.id, nullif(u.acct, $23::uuid), nullif(u.conn, $23::uuid), a.user_id,
       CASE WHEN u.has THEN u.ptid END, CASE WHEN u.has THEN u.typ END, CASE WHEN u.has THEN u.sub END,
       u.pending, u.removed, nullif(u.amount, '')::numeric, CASE WHEN u.has THEN u.cur END,
       CASE WHEN u.has THEN u.descr END, nullif(u.tdate, '')::date, nullif(u.sdate, '')::date, nullif(u.symbol, ''),
       nullif(u.qty, '')::numeric, nullif(u.price, '')::numeric, nullif(u.comm, '')::numeric, nullif(u.fees, '')::numeric,
       u.dv, u.sv, u.minpos, u.maxpos
  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::boolean[],
              $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
              $17::text[], $18::text[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[], $24::boolean[])
       AS u(id, acct, conn, ptid, typ, sub, pending, removed, amount, cur, descr, tdate, sdate, symbol, qty, price, comm,
            fees, dv, sv, minpos, maxpos, has)
  LEFT JOIN %[2]s AS a ON a.id = u.acct
ON CONFLICT (id) DO UPDATE SET
    account_id = coalesce(t.account_id, excluded.account_id),
    connection_id = coalesce(t.connection_id, excluded.connection_id),
    user_id = coalesce(t.user_id, excluded.user_id),%[3]s
    data_version = greatest(t.data_version, excluded.data_version),
    removed = CASE WHEN excluded.state_version > t.state_version THEN excluded.removed ELSE t.removed END,
    state_version = greatest(t.state_version, excluded.state_version),
    created_position = least(t.created_position, excluded.created_position),
    updated_position = greatest(t.updated_position, excluded.updated_position)`,
		t.Of(transactionsTable), t.Of(accountsTable), set),
		ids, accts, conns, ptids, types, subtypes, pending, removed, amounts, curs, descs, dates, settles, symbols,
		qtys, prices, comms, fees, dataVersions, stateVersions, mins, maxs, [16]byte(uuid.Nil), hasData)
}

// queueHistory queues the batch's recorded balances; a balance recorded
// before is left as it is (its stream version is its key).
func queueHistory(t TableNames, points []balancePoint, queue func(string, string, ...any)) {
	n := len(points)
	if n == 0 {
		return
	}
	var (
		ids              = make([]uuid.UUID, n)
		versions, posits = make([]int64, n), make([]int64, n)
		ats              = make([]time.Time, n)
		bals, curs       = make([]string, n), make([]string, n)
		avails           = make([]*string, n)
	)
	for i, p := range points {
		ids[i], versions[i], posits[i], ats[i], bals[i], curs[i], avails[i] = p.accountID, p.version, p.globalPos, p.at, p.balance, p.currency, p.available
	}
	queue("insert balance history", fmt.Sprintf(`INSERT INTO %s (account_id, version, recorded_at, balance, available_balance, currency, global_position)
		SELECT u.id, u.v, u.at, u.bal::numeric, u.avail::numeric, u.cur, u.pos
		  FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::bigint[])
		       AS u(id, v, at, bal, avail, cur, pos)
		ON CONFLICT (account_id, version) DO NOTHING`, t.Of(balanceHistoryTable)),
		ids, versions, ats, bals, avails, curs, posits)
}

// queueHoldings replaces the holdings of every account whose newer
// positions the batch recorded: the event lists them all.
func queueHoldings(t TableNames, f *accountFold, queue func(string, string, ...any)) {
	if len(f.holdings) == 0 {
		return
	}
	var (
		replaced                     []uuid.UUID
		ids                          []uuid.UUID
		ordinals                     []int32
		symbols, descs, assets, curs []string
		qtys, values                 []string
		prices                       []*string
		asOf                         []time.Time
	)
	for _, id := range f.order {
		hs, ok := f.holdings[id]
		if !ok {
			continue
		}
		replaced = append(replaced, id)
		at := *f.rows[id].holdingsAt
		for i, h := range hs {
			ids, ordinals = append(ids, id), append(ordinals, int32(i))
			symbols, descs, assets, curs = append(symbols, h.Symbol), append(descs, h.Description), append(assets, h.AssetType), append(curs, h.Currency)
			qtys, values, prices = append(qtys, h.Quantity.String()), append(values, h.MarketValue.String()), append(prices, decimalText(h.AveragePrice))
			asOf = append(asOf, at)
		}
	}
	queue("drop replaced holdings", fmt.Sprintf(`DELETE FROM %s WHERE account_id = ANY($1::uuid[])`, t.Of(holdingsTable)), replaced)
	if len(ids) == 0 {
		return // the accounts hold nothing any more
	}
	queue("insert holdings", fmt.Sprintf(`INSERT INTO %s (account_id, ordinal, symbol, description, asset_type, quantity,
		average_price, market_value, currency, as_of)
		SELECT u.id, u.ord, u.sym, u.descr, u.asset, u.qty::numeric, u.price::numeric, u.val::numeric, u.cur, u.at
		  FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
		       AS u(id, ord, sym, descr, asset, qty, price, val, cur, at)`, t.Of(holdingsTable)),
		ids, ordinals, symbols, descs, assets, qtys, prices, values, curs, asOf)
}

// copyMinRows is the fewest rows in a batch worth the COPY path's extra
// round trips; smaller batches (a failing batch split to find its event, a
// parked event applied again, the swap's catch-up) upsert them all.
const copyMinRows = 64

// copyNewTransactions is the fast path of a large batch (a sync's, a
// rebuild's) for the transactions table: it sends b (the accounts' upsert,
// queued as what), asks which of the batch's transactions the table may
// hold already and the owners of their accounts, and COPYs in every new
// one as the upsert would have inserted it; it returns those left for the
// upsert, the rows already there. COPY writes a row at a fraction of what
// the upsert's unnest, join and conflict check cost (docs/benchmarks.md),
// and in a sync or a rebuild almost every row is new. It COPYs text, which
// PostgreSQL parses with the same input functions as the upsert's casts,
// so a decimal or date is read exactly as by the upsert (and a bad one
// fails the same event).
func copyNewTransactions(ctx context.Context, tx pgx.Tx, t TableNames, f *transactionFold, b *pgx.Batch, what []string) ([]uuid.UUID, error) {
	// Only rows whose stream began before this batch may be there already;
	// the others (nearly all of a sync's or a rebuild's) are not looked up.
	var ids [][16]byte
	var accts [][16]byte
	seenAcct := map[[16]byte]bool{}
	for _, id := range f.order {
		d := f.rows[id]
		if !d.created {
			ids = append(ids, id)
		}
		if a := d.accountID; a != uuid.Nil && !seenAcct[a] {
			seenAcct[a] = true
			accts = append(accts, a)
		}
	}
	// A rebuild's shadow table grows from empty: a plan cached while it
	// was small (a sequential scan) would be kept as it grows to millions
	// of rows, so these look-ups are planned for the table as it is now.
	b.Queue(`SET LOCAL plan_cache_mode = force_custom_plan`)
	b.Queue(fmt.Sprintf(`SELECT id FROM %s WHERE id = ANY($1::uuid[])`, t.Of(transactionsTable)), ids)
	b.Queue(fmt.Sprintf(`SELECT id, user_id FROM %s WHERE id = ANY($1::uuid[]) AND user_id IS NOT NULL`, t.Of(accountsTable)), accts)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for _, name := range what {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("plan look-ups afresh: %w", err)
	}
	present := map[[16]byte]bool{}
	var id, user [16]byte
	rows, _ := br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { present[id] = true; return nil }); err != nil {
		return nil, fmt.Errorf("find transactions already written: %w", err)
	}
	owners := map[[16]byte][16]byte{}
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&id, &user}, func() error { owners[id] = user; return nil }); err != nil {
		return nil, fmt.Errorf("read owners of transactions' accounts: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("write %s batch: %w", FinancialDataName, err)
	}
	var upsert []uuid.UUID
	buf := make([]byte, 0, 320*len(f.order))
	copied := 0
	for _, id := range f.order {
		d := f.rows[id]
		if present[d.id] {
			upsert = append(upsert, id)
			continue
		}
		buf = appendTransactionCopyLine(buf, d, owners)
		copied++
	}
	if copied > 0 {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), fmt.Sprintf(`COPY %s (%s) FROM STDIN`,
			t.Of(transactionsTable), txCopyColumns))
		if err != nil {
			return nil, fmt.Errorf("copy new transactions: %w", err)
		}
	}
	return upsert, nil
}

// txCopyColumns are the columns copyNewTransactions writes: every one but
// the generated status.
const txCopyColumns = `id, account_id, connection_id, user_id, provider_transaction_id, transaction_type, subtype,
    pending, removed, amount, currency, description, transaction_date, settlement_date, symbol, quantity, unit_price,
    commission, fees, data_version, state_version, created_position, updated_position`

// appendTransactionCopyLine appends the line of COPY's text format holding
// the row the upsert of queueTransactions inserts for a transaction new to
// the table, column by column as its SQL computes it.
func appendTransactionCopyLine(buf []byte, d *txDelta, owners map[[16]byte][16]byte) []byte {
	id := func(id [16]byte, valid bool) {
		if !valid {
			buf = append(buf, `\N`...)
		} else {
			buf = appendUUIDText(buf, id)
		}
		buf = append(buf, '\t')
	}
	x := d.data
	has := x != nil
	if !has {
		x = &txPayload{}
	}
	// text writes s, or NULL when !present.
	text := func(s string, present bool) {
		if !present {
			buf = append(buf, `\N`...)
		} else {
			buf = appendCopyText(buf, s)
		}
		buf = append(buf, '\t')
	}
	boolean := func(v bool) {
		if v {
			buf = append(buf, 't', '\t')
		} else {
			buf = append(buf, 'f', '\t')
		}
	}
	id(d.id, true)
	id(d.accountID, d.accountID != uuid.Nil)
	id(d.connectionID, d.connectionID != uuid.Nil)
	owner, found := owners[d.accountID]
	id(owner, d.accountID != uuid.Nil && found)
	text(x.ProviderTransactionID, has)
	text(x.Type, has)
	text(x.Subtype, has)
	boolean(x.Pending)
	boolean(d.removed)
	text(string(x.Amount), x.Amount != "")
	text(x.Currency, has)
	text(x.Description, has)
	text(x.Date, x.Date != "")
	text(x.SettlementDate, x.SettlementDate != "")
	text(x.Symbol, x.Symbol != "")
	text(string(x.Quantity), x.Quantity != "")
	text(string(x.UnitPrice), x.UnitPrice != "")
	text(string(x.Commission), x.Commission != "")
	text(string(x.Fees), x.Fees != "")
	for _, n := range []int64{d.dataVersion, d.stateVersion, d.minPos} {
		buf = strconv.AppendInt(buf, n, 10)
		buf = append(buf, '\t')
	}
	buf = strconv.AppendInt(buf, d.maxPos, 10)
	return append(buf, '\n')
}

// appendUUIDText appends id in its canonical text form.
func appendUUIDText(buf []byte, id [16]byte) []byte {
	var text [36]byte
	hex.Encode(text[0:8], id[0:4])
	text[8] = '-'
	hex.Encode(text[9:13], id[4:6])
	text[13] = '-'
	hex.Encode(text[14:18], id[6:8])
	text[18] = '-'
	hex.Encode(text[19:23], id[8:10])
	text[23] = '-'
	hex.Encode(text[24:], id[10:])
	return append(buf, text[:]...)
}

// appendCopyText appends s escaped for COPY's text format, in which a
// backslash, tab, newline or carriage return would end or change the value.
func appendCopyText(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}
