package web

import (
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/projections"
)

// csvChunk is how many transactions one query of an export reads: memory
// stays at one chunk whatever the account holds, and each query is a
// short statement of its own, so no transaction (and no snapshot) lasts
// the whole download.
const csvChunk = 1000

// csvChunkWriteTimeout is how long writing one chunk may take: the
// server's overall write timeout would cut a long export short, so each
// chunk extends the deadline, and a client that stops reading is still
// dropped.
const csvChunkWriteTimeout = 30 * time.Second

// csvHeader names the export's columns: the transaction's fields.
var csvHeader = []string{"id", "account_id", "provider_transaction_id", "transaction_date", "settlement_date",
	"transaction_type", "subtype", "status", "amount", "currency", "description", "symbol", "quantity", "unit_price",
	"commission", "fees"}

// wantsCSV reports whether an Accept header prefers text/csv to JSON: it
// names text/csv with a quality above zero and above any JSON type's.
func wantsCSV(accept string) bool {
	csvQ, jsonQ := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch mt {
		case "text/csv":
			csvQ = max(csvQ, q)
		case "application/json", "application/*", "*/*":
			jsonQ = max(jsonQ, q)
		}
	}
	return csvQ > 0 && csvQ > jsonQ
}

// csvText neutralises a text cell a spreadsheet would run as a formula
// (OWASP's CSV injection): one starting with =, +, -, @, a tab or a
// carriage return is prefixed with a single quote. Only text that comes
// from providers goes through it; amounts and dates are written as
// recorded (a negative amount starts with "-" and stays a number).
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvOptional(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// csvRecord renders one transaction as a row under csvHeader.
func csvRecord(v projections.TransactionView) []string {
	return []string{v.ID.String(), v.AccountID.String(), csvText(v.ProviderTransactionID), v.Date, csvOptional(v.SettlementDate),
		v.Type, csvText(v.Subtype), v.Status, v.Amount, csvText(v.Currency), csvText(v.Description),
		csvText(csvOptional(v.Symbol)), csvOptional(v.Quantity), csvOptional(v.UnitPrice), csvOptional(v.Commission),
		csvOptional(v.Fees)}
}

// transactionsCSV reads the first chunk (so that a missing or foreign
// account is a 404 problem, not a broken download) and returns the
// response that streams the rest.
func (h *strictAPI) transactionsCSV(ctx context.Context, data FinancialData, caller uuid.UUID, f projections.TransactionFilter) (*csvTransactions, error) {
	first, err := data.ListTransactions(ctx, caller, f, nil, csvChunk)
	if err != nil {
		return nil, err
	}
	return &csvTransactions{ctx: ctx, data: data, caller: caller, filter: f, first: first, log: h.s.log}, nil
}

// csvTransactions streams an account's transactions as an RFC 4180 CSV
// attachment, chunk by chunk along the same keyset as the JSON pages.
type csvTransactions struct {
	ctx    context.Context
	data   FinancialData
	caller uuid.UUID
	filter projections.TransactionFilter
	first  []projections.TransactionView
	log    *slog.Logger
}

// VisitListAccountTransactionsResponse writes the export. A failure after
// the header went out cannot become a problem document: the connection is
// aborted instead (http.ErrAbortHandler), so that the client sees a broken
// transfer rather than a file that merely looks complete.
func (r *csvTransactions) VisitListAccountTransactionsResponse(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="transactions-%s.csv"`, r.filter.AccountID))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	fail := func(what string, err error) {
		r.log.ErrorContext(r.ctx, "csv export aborted", "trace_id", TraceID(r.ctx), "step", what, "error", err.Error())
		panic(http.ErrAbortHandler)
	}
	if err := cw.Write(csvHeader); err != nil {
		fail("write header", err)
	}
	chunk := r.first
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(csvChunkWriteTimeout))
		for _, v := range chunk {
			if err := cw.Write(csvRecord(v)); err != nil {
				fail("write row", err)
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			fail("write rows", err)
		}
		if len(chunk) < csvChunk {
			return nil
		}
		_ = rc.Flush()
		last := chunk[len(chunk)-1].Key()
		var err error
		if chunk, err = r.data.ListTransactions(r.ctx, r.caller, r.filter, &last, csvChunk); err != nil {
			fail("read chunk", err)
		}
	}
}
