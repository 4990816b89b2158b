package web_test

import (
	"context"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web"
)

// emptyData is a read model that knows nothing: every list is empty and
// every resource missing. MustServer gives it to servers of tests that do
// not exercise the data routes, which then answer as for a new user; the
// data routes' own tests use the real reader over PostgreSQL.
type emptyData struct{}

var _ web.FinancialData = emptyData{}

func (emptyData) ListAccounts(context.Context, uuid.UUID, projections.AccountFilter, *projections.AccountKey, int) ([]projections.AccountView, []projections.CurrencyTotal, error) {
	return nil, nil, nil
}

func (emptyData) Account(context.Context, uuid.UUID, uuid.UUID) (projections.AccountView, error) {
	return projections.AccountView{}, projections.ErrNotFound
}

func (emptyData) ListConnectionAccounts(context.Context, uuid.UUID, uuid.UUID, *projections.AccountKey, int) ([]projections.AccountView, []projections.CurrencyTotal, error) {
	return nil, nil, projections.ErrNotFound
}

func (emptyData) ListTransactions(_ context.Context, _ uuid.UUID, f projections.TransactionFilter, _ *projections.TransactionKey, _ int) ([]projections.TransactionView, error) {
	if f.AccountID != nil {
		return nil, projections.ErrNotFound
	}
	return nil, nil
}

func (emptyData) Transaction(context.Context, uuid.UUID, uuid.UUID) (projections.TransactionView, error) {
	return projections.TransactionView{}, projections.ErrNotFound
}

func (emptyData) ListHoldings(_ context.Context, _ uuid.UUID, accountID *uuid.UUID, _ *projections.HoldingKey, _ int) ([]projections.HoldingView, error) {
	if accountID != nil {
		return nil, projections.ErrNotFound
	}
	return nil, nil
}

func (emptyData) ListBalanceSnapshots(context.Context, uuid.UUID, projections.SnapshotFilter, *projections.SnapshotKey, int) ([]projections.BalanceSnapshot, error) {
	return nil, nil
}

func (emptyData) BalanceHistory(context.Context, uuid.UUID, uuid.UUID, string, string) ([]projections.DailyBalance, error) {
	return nil, projections.ErrNotFound
}
