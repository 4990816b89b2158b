package fanout

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/eventstore"
)

// ErrInvalidCursor means a change-feed cursor was not issued by this
// deployment for this user: malformed, altered, or another user's.
var ErrInvalidCursor = errors.New("invalid change-feed cursor")

// cursorVersion is the first byte of every cursor: the layout below.
//
//	version (1) | transaction id (8) | global position (8) | tag (16)
//
// The tag is HMAC-SHA256 over "dashtam feed cursor v1", the user id and
// the 17 bytes before it, cut to 16 bytes, so a cursor names a place in
// the log for one user only and cannot be forged or moved.
const cursorVersion byte = 1

const cursorLen = 1 + 8 + 8 + 16

// Cursors issues and checks change-feed cursors: places in the log, in
// commit order, bound to a user. A log position rather than a read-model
// row, so a cursor survives every projection rebuild.
type Cursors struct {
	key []byte
}

// NewCursors returns a codec keyed by key (at least 32 bytes; serve
// derives it from the JWT secret for this one purpose).
func NewCursors(key []byte) (*Cursors, error) {
	if len(key) < 32 {
		return nil, errors.New("fanout: cursor key must be at least 32 bytes")
	}
	return &Cursors{key: append([]byte(nil), key...)}, nil
}

// Encode returns the opaque cursor of pos for user.
func (c *Cursors) Encode(user uuid.UUID, pos eventstore.Position) string {
	b := make([]byte, cursorLen)
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], pos.TransactionID)
	binary.BigEndian.PutUint64(b[9:17], uint64(pos.GlobalPosition))
	copy(b[17:], c.tag(user, b[:17]))
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the position of cursor, or ErrInvalidCursor when it is
// not one Encode issued for user.
func (c *Cursors) Decode(user uuid.UUID, cursor string) (eventstore.Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return eventstore.Position{}, ErrInvalidCursor
	}
	if !hmac.Equal(b[17:], c.tag(user, b[:17])) {
		return eventstore.Position{}, ErrInvalidCursor
	}
	gp := binary.BigEndian.Uint64(b[9:17])
	if gp > 1<<63-1 {
		return eventstore.Position{}, ErrInvalidCursor
	}
	return eventstore.Position{TransactionID: binary.BigEndian.Uint64(b[1:9]), GlobalPosition: int64(gp)}, nil
}

func (c *Cursors) tag(user uuid.UUID, body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("dashtam feed cursor v1\x00"))
	m.Write(user[:])
	m.Write(body)
	return m.Sum(nil)[:16]
}
