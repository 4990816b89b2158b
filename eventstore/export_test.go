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

// ReadCommitOrder reads every row in commit order with the statement and
// pages verify uses, without decoding or checking anything: the baseline of
// its benchmark. It returns how many rows it read.
func ReadCommitOrder(ctx context.Context, s *Store) (int, error) {
	head, err := s.head(ctx)
	if err != nil {
		return 0, err
	}
	var after Position
	total := 0
	for {
		rows, err := s.pool.Query(ctx, verifyScanSQL, binaryResults, after.TransactionID, after.GlobalPosition, head, pageSize)
		if err != nil {
			return 0, err
		}
		n := 0
		for rows.Next() {
			v := rows.RawValues()
			after = Position{TransactionID: beUint64(v[1]), GlobalPosition: int64(beUint64(v[0]))}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		total += n
		if n < pageSize {
			return total, nil
		}
	}
}
