package eventstore

import "context"

// QueryPaged is Query with a page size of the test's choosing, so that page
// boundaries are exercised on a small log.
func QueryPaged(ctx context.Context, s *Store, f Filter, fn func(Record) error, limit int) error {
	return s.query(ctx, f, fn, limit)
}

// VerifyChainsPaged is VerifyChains with a page size of the test's choosing.
func VerifyChainsPaged(ctx context.Context, s *Store, limit int) (VerifyReport, *ChainBreak, error) {
	return s.verifyChains(ctx, nil, limit)
}
