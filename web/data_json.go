package web

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/projections"
)

// transactionPage answers a page of transactions, the hottest answer of
// the API, with JSON appended by hand rather than through encoding/json's
// reflection: byte for byte what the generated api.TransactionList would
// encode to (TestTransactionPageEncodesLikeTheGeneratedTypes), at a fraction
// of the cost, measured in BenchmarkTransactionsPage (docs/benchmarks.md).
type transactionPage struct {
	items []projections.TransactionView
	next  *string
}

// VisitListAccountTransactionsResponse writes the page.
func (p transactionPage) VisitListAccountTransactionsResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// VisitListTransactionsResponse writes the page.
func (p transactionPage) VisitListTransactionsResponse(w http.ResponseWriter) error {
	return p.write(w)
}

// pageBuffers keeps the buffers pages are rendered into (about 23 KB for
// 50 transactions): a page allocated afresh was a quarter of a request's
// allocation. Write copies the bytes out before the buffer goes back.
var pageBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledPage is the largest buffer kept for reuse; rarer, larger pages
// (long descriptions) are left to the collector rather than pinned.
const maxPooledPage = 256 << 10

func (p transactionPage) write(w http.ResponseWriter) error {
	bp := pageBuffers.Get().(*[]byte)
	b := p.appendJSON((*bp)[:0])
	// With its length known the body goes out in one piece rather than
	// in chunks.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b)
	if cap(b) <= maxPooledPage {
		*bp = b
		pageBuffers.Put(bp)
	}
	return err
}

// appendJSON appends the page as encoding/json's Encoder writes
// api.TransactionList: fields in the generated struct's order, optional
// trade fields left out when absent, HTML characters escaped, a newline
// at the end.
func (p transactionPage) appendJSON(b []byte) []byte {
	b = append(b, `{"items":[`...)
	for i, v := range p.items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTransactionJSON(b, v)
	}
	b = append(b, `],"next_cursor":`...)
	b = appendOptionalString(b, p.next)
	return append(b, "}\n"...)
}

// appendTransactionJSON appends one transaction in api.Transaction's field order.
func appendTransactionJSON(b []byte, v projections.TransactionView) []byte {
	b = append(b, `{"account_id":"`...)
	b = appendUUID(b, v.AccountID)
	b = append(b, `","amount":`...)
	b = appendJSONString(b, v.Amount)
	if v.Commission != nil {
		b = append(b, `,"commission":`...)
		b = appendJSONString(b, *v.Commission)
	}
	b = append(b, `,"currency":`...)
	b = appendJSONString(b, v.Currency)
	b = append(b, `,"description":`...)
	b = appendJSONString(b, v.Description)
	if v.Fees != nil {
		b = append(b, `,"fees":`...)
		b = appendJSONString(b, *v.Fees)
	}
	b = append(b, `,"id":"`...)
	b = appendUUID(b, v.ID)
	b = append(b, `","provider_transaction_id":`...)
	b = appendJSONString(b, v.ProviderTransactionID)
	if v.Quantity != nil {
		b = append(b, `,"quantity":`...)
		b = appendJSONString(b, *v.Quantity)
	}
	b = append(b, `,"settlement_date":`...)
	b = appendOptionalString(b, v.SettlementDate)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, v.Status)
	b = append(b, `,"subtype":`...)
	b = appendOptionalString(b, nonEmpty(v.Subtype))
	if v.Symbol != nil {
		b = append(b, `,"symbol":`...)
		b = appendJSONString(b, *v.Symbol)
	}
	b = append(b, `,"transaction_date":`...)
	b = appendJSONString(b, v.Date)
	b = append(b, `,"transaction_type":`...)
	b = appendJSONString(b, v.Type)
	if v.UnitPrice != nil {
		b = append(b, `,"unit_price":`...)
		b = appendJSONString(b, *v.UnitPrice)
	}
	return append(b, '}')
}

func appendOptionalString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// jsonHex is the digits of \u escapes.
const jsonHex = "0123456789abcdef"

// appendJSONString appends s quoted exactly as encoding/json does with
// HTML escaping on (its default): ", \ and control characters escaped,
// <, > and & as \u003c, \u003e, \u0026, invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendUUID appends u in its canonical hyphenated form, as uuid.UUID's
// String does, without allocating.
func appendUUID(b []byte, u uuid.UUID) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return append(b, buf[:]...)
}
