package web

import (
	"slices"
	"strings"
	"time"

	"github.com/dashtam/dashtam/commands"
)

// The vocabularies the data routes filter by (commands' constants, which
// providers map to): a value outside them is refused, 422, rather than
// answered with an empty list that looks like "no such data".
var (
	accountTypes = []string{commands.AccountTypeChecking, commands.AccountTypeSavings, commands.AccountTypeBrokerage,
		commands.AccountTypeRetirement, commands.AccountTypeCredit, commands.AccountTypeOther}
	transactionTypes = []string{commands.TransactionTypeBuy, commands.TransactionTypeSell, commands.TransactionTypeDividend,
		commands.TransactionTypeInterest, commands.TransactionTypeDeposit, commands.TransactionTypeWithdrawal,
		commands.TransactionTypeTransfer, commands.TransactionTypeFee, commands.TransactionTypeJournal, commands.TransactionTypeOther}
	transactionStatuses = []string{"pending", "posted", "removed"}
)

// maxHistoryDays bounds a balance-history range: five years of daily
// points is what a chart needs, and bounds the answer's size.
const maxHistoryDays = 1830

// defaultHistoryDays is the range of a balance history asked without one.
const defaultHistoryDays = 30

// dataQuery collects the refusals of one request's query values, so that a
// client learns every bad parameter at once. The schema leaves these
// parameters plain strings on purpose: a value that has the right shape
// but is refused (a date that does not exist, an unknown type, a cursor of
// another query) is a 422, not a contract violation.
type dataQuery struct {
	fields []FieldError
}

func (q *dataQuery) refuse(field, message string) {
	q.fields = append(q.fields, FieldError{Field: field, Message: message})
}

// date parses an optional YYYY-MM-DD value; "" when absent or refused.
func (q *dataQuery) date(field string, v *string) string {
	if v == nil {
		return ""
	}
	d, err := time.Parse(time.DateOnly, *v)
	if err != nil || d.Year() < 1 {
		q.refuse(field, "must be a date, YYYY-MM-DD")
		return ""
	}
	return d.Format(time.DateOnly)
}

// dateRange parses start_date and end_date and refuses a start after the end.
func (q *dataQuery) dateRange(start, end *string) (string, string) {
	s, e := q.date("start_date", start), q.date("end_date", end)
	if s != "" && e != "" && s > e {
		q.refuse("start_date", "must not be after end_date")
	}
	return s, e
}

// oneOf checks an optional value against its vocabulary.
func (q *dataQuery) oneOf(field string, v *string, allowed []string) string {
	if v == nil {
		return ""
	}
	if !slices.Contains(allowed, *v) {
		q.refuse(field, "must be one of "+strings.Join(allowed, ", "))
		return ""
	}
	return *v
}

// cursor opens an optional cursor of the caller's query s into key and
// reports whether there was one.
func (q *dataQuery) cursor(codec cursorCodec, s *cursorScope, caller string, v *string, key any) bool {
	if v == nil {
		return false
	}
	if err := codec.open(s, caller, *v, key); err != nil {
		q.refuse("cursor", err.Error())
		return false
	}
	return true
}

// err is the request's refusal, nil when every value passed.
func (q *dataQuery) err() error {
	if len(q.fields) == 0 {
		return nil
	}
	return &Error{Code: CodeUnprocessable, Detail: "the request has query values the API does not accept", Fields: q.fields}
}

// pageLimit is the page size asked for, or the default. The schema bounds
// it (1-100, else 400); the check is kept so that a handler is safe alone.
func pageLimit(v *int) (int, error) {
	if v == nil {
		return defaultPageSize, nil
	}
	if *v < 1 || *v > maxPageSize {
		return 0, &Error{Code: CodeInvalid, Fields: []FieldError{{Field: "limit", Message: "must be between 1 and 100"}}}
	}
	return *v, nil
}
