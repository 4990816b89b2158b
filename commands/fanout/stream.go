package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// Defaults of the live stream; each has a field in HubConfig.
const (
	// DefaultMaxStreamsPerUser bounds one user's open streams on one instance.
	DefaultMaxStreamsPerUser = 5
	// DefaultStreamBuffer is how many events a stream may fall behind the
	// tailer before it is cut (the client resumes from its Last-Event-ID).
	DefaultStreamBuffer = 1024
	// defaultPoll is the fallback for appends nobody signalled.
	defaultPoll = time.Second
	// tailBatch bounds one read of the tailer.
	tailBatch = 1000
	// maxHeldBack caps the polling interval while committed events wait
	// behind an open transaction.
	maxHeldBack = 100 * time.Millisecond
)

// Errors of the live stream.
var (
	// ErrTooManyStreams means the user holds the most streams an instance allows.
	ErrTooManyStreams = errors.New("too many open event streams")
	// ErrInvalidEventID means a Last-Event-ID this API never sent.
	ErrInvalidEventID = errors.New("invalid Last-Event-ID")
	// ErrStreamLost means the stream fell too far behind and was cut; the
	// client resumes from the last id it got.
	ErrStreamLost = errors.New("the stream fell behind and was cut")
)

// HubConfig configures a Hub; zero fields take the defaults.
type HubConfig struct {
	// NotifyChannel is the LISTEN/NOTIFY channel appends are announced on
	// by every instance (projections.NotifyChannel).
	NotifyChannel     string
	MaxStreamsPerUser int
	Buffer            int
	PollInterval      time.Duration
	Logger            *slog.Logger
}

// Hub feeds this instance's live event streams from the log: one tailer
// per instance reads every committed event behind the xid horizon, woken
// by this process's appends and by NOTIFY from any other, derives the
// integration events and hands each to the streams of its user. An event
// committed through any instance therefore reaches a stream held by any
// other, and nothing holds a transaction open per stream: the tailer reads
// with plain statements. A stream that resumes reads its user's events
// after its Last-Event-ID from the log first.
type Hub struct {
	pool    *pgxpool.Pool
	store   *eventstore.Store
	deriver *Deriver
	cfg     HubConfig

	mu      sync.Mutex
	started bool
	ready   chan struct{} // closed once the tailer knows its start position
	pos     eventstore.Position
	streams map[uuid.UUID]map[*Stream]struct{}
}

// NewHub returns a hub over the store's log.
func NewHub(store *eventstore.Store, deriver *Deriver, cfg HubConfig) (*Hub, error) {
	if store == nil || deriver == nil {
		return nil, errors.New("fanout: hub needs a store and a deriver")
	}
	if cfg.NotifyChannel == "" {
		return nil, errors.New("fanout: hub needs the notify channel")
	}
	if cfg.MaxStreamsPerUser <= 0 {
		cfg.MaxStreamsPerUser = DefaultMaxStreamsPerUser
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultStreamBuffer
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{pool: store.Pool(), store: store, deriver: deriver, cfg: cfg, ready: make(chan struct{}),
		streams: map[uuid.UUID]map[*Stream]struct{}{}}, nil
}

// EventID is the SSE id of an integration event: its causing event's
// place in commit order and its rank among that event's integration
// events, which is all a stream needs to resume after it.
func EventID(e Event) string {
	return strconv.FormatUint(e.TransactionID, 10) + "-" + strconv.FormatInt(e.Position, 10) + "-" + strconv.Itoa(e.Seq)
}

// streamPos is a place in the integration stream: after the seq-th event
// derived from the event at pos.
type streamPos struct {
	pos eventstore.Position
	seq int
}

func (p streamPos) before(e Event) bool {
	q := eventstore.Position{TransactionID: e.TransactionID, GlobalPosition: e.Position}
	if p.pos != q {
		return p.pos.Less(q)
	}
	return p.seq < e.Seq
}

// parseEventID reverses EventID.
func parseEventID(s string) (streamPos, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return streamPos{}, ErrInvalidEventID
	}
	tx, err1 := strconv.ParseUint(parts[0], 10, 64)
	gp, err2 := strconv.ParseInt(parts[1], 10, 64)
	seq, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || gp < 0 || seq < 0 {
		return streamPos{}, ErrInvalidEventID
	}
	return streamPos{pos: eventstore.Position{TransactionID: tx, GlobalPosition: gp}, seq: seq}, nil
}

// Stream is one open live stream of one user.
type Stream struct {
	hub  *Hub
	user uuid.UUID
	// live receives the events the tailer dispatches after from.
	live chan Event
	// lost is closed when the stream fell behind and was cut.
	lost     chan struct{}
	lostOnce sync.Once
	// from is where the live part starts: the tailer's position when the
	// stream opened; a resumed stream reads up to it from the log.
	from eventstore.Position
	// resume is where a resumed stream's catch-up starts; nil for none.
	resume *streamPos
}

// Open opens a stream of user's integration events: those committed from
// now on, or, with lastEventID (an id this API sent), those after it.
// Errors: ErrTooManyStreams, ErrInvalidEventID. Close it when done.
func (h *Hub) Open(ctx context.Context, user uuid.UUID, lastEventID string) (*Stream, error) {
	var resume *streamPos
	if lastEventID != "" {
		p, err := parseEventID(lastEventID)
		if err != nil {
			return nil, err
		}
		resume = &p
	}
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.streams[user]) >= h.cfg.MaxStreamsPerUser {
		return nil, ErrTooManyStreams
	}
	s := &Stream{hub: h, user: user, live: make(chan Event, h.cfg.Buffer), lost: make(chan struct{}), from: h.pos, resume: resume}
	if h.streams[user] == nil {
		h.streams[user] = map[*Stream]struct{}{}
	}
	h.streams[user][s] = struct{}{}
	return s, nil
}

// Close removes the stream from its hub.
func (s *Stream) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.streams[s.user]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.streams, s.user)
		}
	}
}

// Live returns the channel of events the tailer dispatches to s.
func (s *Stream) Live() <-chan Event { return s.live }

// Lost is closed when s fell behind and was cut.
func (s *Stream) Lost() <-chan struct{} { return s.lost }

// CatchUp calls emit with every event of the user after the stream's
// Last-Event-ID and up to where its live part starts, in order, reading
// the log in pages; a stream opened without one has nothing to catch up.
func (s *Stream) CatchUp(ctx context.Context, emit func(Event) error) error {
	if s.resume == nil || s.from.Less(s.resume.pos) {
		return nil
	}
	send := func(recs []eventstore.Record) error {
		events, failures, err := s.hub.deriver.Derive(ctx, s.hub.pool, recs)
		if err != nil {
			return err
		}
		for _, f := range failures {
			s.hub.cfg.Logger.Warn("live stream: event not derived", "err", f)
		}
		for _, e := range events {
			if s.resume.before(e) {
				if err := emit(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// The event the id names may have derived more than the client got.
	at := s.resume.pos
	recs, err := readRecords(ctx, s.hub.pool, `SELECT `+sourceColumns+` FROM events
		WHERE global_position = $1 AND transaction_id = $2::xid8 AND owner_id = $3`, at.GlobalPosition, at.TransactionID, s.user)
	if err != nil {
		return err
	}
	if err := send(recs); err != nil {
		return err
	}
	for {
		recs, err := s.hub.userEvents(ctx, s.user, at, s.from, tailBatch)
		if err != nil {
			return err
		}
		if err := send(recs); err != nil {
			return err
		}
		if len(recs) < tailBatch {
			return nil
		}
		at = recs[len(recs)-1].Position()
	}
}

// userEvents reads up to limit of user's source events in (after, upTo]
// in commit order, through the events_owner_commit_order index. Everything
// up to upTo is behind the horizon already: the tailer passed it.
func (h *Hub) userEvents(ctx context.Context, user uuid.UUID, after, upTo eventstore.Position, limit int) ([]eventstore.Record, error) {
	return readRecords(ctx, h.pool, `SELECT `+sourceColumns+` FROM events
		WHERE owner_id = $1 AND (transaction_id, global_position) > ($2::xid8, $3)
		  AND (transaction_id, global_position) <= ($4::xid8, $5) AND event_type = ANY($6)
		ORDER BY transaction_id, global_position LIMIT $7`,
		user, after.TransactionID, after.GlobalPosition, upTo.TransactionID, upTo.GlobalPosition, SourceEventTypes, limit)
}

// sourceColumns is what derivation needs of an event.
const sourceColumns = `global_position, transaction_id, stream_type, stream_id, version, event_id, event_type,
	schema_version, coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid), payload, recorded_at`

func readRecords(ctx context.Context, q eventstore.Querier, sql string, args ...any) ([]eventstore.Record, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read source events: %w", err)
	}
	defer rows.Close()
	var out []eventstore.Record
	for rows.Next() {
		var r eventstore.Record
		var typ string
		var payload []byte
		if err := rows.Scan(&r.GlobalPosition, &r.TransactionID, &typ, &r.Stream.ID, &r.Version, &r.EventID, &r.EventType,
			&r.SchemaVersion, &r.OwnerID, &payload, &r.RecordedAt); err != nil {
			return nil, fmt.Errorf("read source events: %w", err)
		}
		r.Stream.Type, r.Payload = eventstore.StreamType(typ), payload
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read source events: %w", err)
	}
	return out, nil
}

// headSQL is the last committed event behind the horizon: every event
// before it in commit order is final.
const headSQL = `SELECT transaction_id, global_position FROM events
	WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY transaction_id DESC, global_position DESC LIMIT 1`

// head returns headSQL's position, or the zero position on an empty log.
func (h *Hub) head(ctx context.Context) (eventstore.Position, error) {
	rows, err := h.pool.Query(ctx, headSQL)
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read the log's head: %w", err)
	}
	p, err := collectOnePosition(rows)
	if errors.Is(err, errNoRow) {
		return eventstore.Position{}, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read the log's head: %w", err)
	}
	return p, nil
}

// Run tails the log until ctx is done, then returns nil; failures are
// logged and retried, because streams depend on it.
func (h *Hub) Run(ctx context.Context) error {
	for {
		err := h.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		h.cfg.Logger.Warn("live stream tailer interrupted; retrying", "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
}

// session listens for NOTIFY on a connection of its own and tails.
func (h *Hub) session(ctx context.Context) error {
	cfg := h.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "dashtam event stream tailer"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect listener: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{h.cfg.NotifyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen for appends: %w", err)
	}
	h.mu.Lock()
	started := h.started
	h.mu.Unlock()
	if !started {
		p, err := h.head(ctx)
		if err != nil {
			return err
		}
		h.mu.Lock()
		h.pos, h.started = p, true
		h.mu.Unlock()
		close(h.ready)
	}
	return eventstore.WhileListening(ctx, conn, "listener lost", h.tail)
}

// tail reads and dispatches until ctx is done or a read fails.
func (h *Hub) tail(ctx context.Context, notified <-chan struct{}) error {
	heldBack := time.Duration(0)
	poll := time.NewTimer(h.cfg.PollInterval)
	defer poll.Stop()
	for {
		appended := h.store.Appended().C()
		n, more, err := h.step(ctx)
		if err != nil {
			return err
		}
		switch {
		case n > 0 && more:
			heldBack = 0
			continue
		case more:
			heldBack = min(max(2*heldBack, time.Millisecond), maxHeldBack)
			if !sleep(ctx, heldBack) {
				return ctx.Err()
			}
			continue
		}
		heldBack = 0
		poll.Reset(h.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-appended:
		case <-notified:
		case <-poll.C:
		}
	}
}

// step reads the next source events up to the head behind the horizon,
// derives them when a stream is open and dispatches them. It reports how
// many events it passed and whether more wait: a full read, or committed
// events held back beyond the horizon.
func (h *Hub) step(ctx context.Context) (int, bool, error) {
	h.mu.Lock()
	from := h.pos
	h.mu.Unlock()
	head, err := h.head(ctx)
	if err != nil {
		return 0, false, err
	}
	held, err := eventstore.CommittedAfter(ctx, h.pool, head)
	if err != nil {
		return 0, false, err
	}
	if !from.Less(head) {
		return 0, held, nil
	}
	recs, err := readRecords(ctx, h.pool, `SELECT `+sourceColumns+` FROM events
		WHERE (transaction_id, global_position) > ($1::xid8, $2) AND (transaction_id, global_position) <= ($3::xid8, $4)
		  AND event_type = ANY($5)
		ORDER BY transaction_id, global_position LIMIT $6`,
		from.TransactionID, from.GlobalPosition, head.TransactionID, head.GlobalPosition, SourceEventTypes, tailBatch)
	if err != nil {
		return 0, false, err
	}
	to, full := head, len(recs) == tailBatch
	if full {
		to = recs[len(recs)-1].Position()
	}
	h.mu.Lock()
	open := len(h.streams) > 0
	if !open || len(recs) == 0 {
		h.pos = to
		h.mu.Unlock()
		return len(recs), full || held, nil
	}
	h.mu.Unlock()
	events, failures, err := h.deriver.Derive(ctx, h.pool, recs)
	if err != nil {
		return 0, false, err
	}
	for _, f := range failures {
		h.cfg.Logger.Warn("live stream: event not derived", "err", f)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		for s := range h.streams[e.UserID] {
			s.offer(e)
		}
	}
	h.pos = to
	return len(recs), full || held, nil
}

// offer hands e to the stream without blocking the tailer; a stream whose
// buffer is full is cut, and its client resumes from the log.
func (s *Stream) offer(e Event) {
	if s.resume != nil && !s.resume.before(e) {
		return // the client had it: it resumed from further on
	}
	select {
	case <-s.lost:
		return
	default:
	}
	select {
	case s.live <- e:
	default:
		s.lostOnce.Do(func() { close(s.lost) })
	}
}

// sleep waits for d or until ctx is done, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
