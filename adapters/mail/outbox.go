package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dashtam/dashtam/commands"
)

// Outbox writes each message as one RFC 5322 file, DIR/<UTC time>-<random>.eml.
// Mail carries verification and reset links, so the directory is created
// 0700 and files are 0600. A file appears under its .eml name only once it
// is complete (written to a hidden temporary file, synced, then renamed), so
// a reader listing *.eml never sees half a message.
type Outbox struct {
	dir string
	o   options

	// mu and last keep names strictly increasing within this process even
	// when the clock's resolution is coarse or it steps backwards, so sorting
	// the names sorts the messages in send order.
	mu   sync.Mutex
	last time.Time

	// beforePublish, when set by a test, runs after the temporary file is
	// complete and before it is renamed to its .eml name.
	beforePublish func(tmpPath string)
}

var _ commands.Mailer = (*Outbox)(nil)

// nameLayout is ISO 8601 basic format with nanoseconds: fixed width, so the
// lexical order of names is their chronological order.
const nameLayout = "20060102T150405.000000000Z"

func newOutbox(dir string, o options) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create mail outbox: %w", err)
	}
	return &Outbox{dir: dir, o: o}, nil
}

// String describes the transport for start-up logs.
func (b *Outbox) String() string { return "file://" + filepath.ToSlash(b.dir) }

// Send writes msg as one new .eml file; see commands.Mailer for the errors
// it returns.
func (b *Outbox) Send(ctx context.Context, msg commands.Message) error {
	gm, err := buildMessage(b.o.from, msg)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write mail to outbox: %w", err)
	}
	var buf bytes.Buffer
	if _, err := gm.WriteTo(&buf); err != nil {
		return fmt.Errorf("render mail: %w", err)
	}
	name, err := b.nextName()
	if err != nil {
		return err
	}
	if err := b.writeAtomically(name, buf.Bytes()); err != nil {
		return fmt.Errorf("write mail to outbox %s: %w", b.dir, err)
	}
	return nil
}

func (b *Outbox) nextName() (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("name mail file: %w", err)
	}
	b.mu.Lock()
	now := time.Now().UTC()
	if !now.After(b.last) {
		now = b.last.Add(time.Nanosecond)
	}
	b.last = now
	b.mu.Unlock()
	return now.Format(nameLayout) + "-" + hex.EncodeToString(r[:]) + ".eml", nil
}

func (b *Outbox) writeAtomically(name string, data []byte) (err error) {
	// MkdirAll again: the outbox may have been emptied by removing it.
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	// The temporary name starts with a dot and lacks the .eml suffix, so
	// nothing that looks for messages picks it up. CreateTemp makes it 0600.
	f, err := os.CreateTemp(b.dir, ".incoming-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	// Synced before the rename so that after a crash the name never points
	// at an empty or truncated file.
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if b.beforePublish != nil {
		b.beforePublish(tmp)
	}
	return os.Rename(tmp, filepath.Join(b.dir, name))
}
