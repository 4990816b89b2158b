package mail

import (
	"bytes"
	"context"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dashtam/dashtam/commands"
)

// TestOutboxPublishesOnlyCompleteFiles stops a send at the one moment a
// partial message could exist (all bytes written, not yet published) and
// checks that no .eml is visible then and that the hidden file already holds
// the whole message.
func TestOutboxPublishesOnlyCompleteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	b, err := newOutbox(dir, options{from: mustAddress(t, DefaultFrom)})
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	b.beforePublish = func(tmp string) {
		seen = true
		if strings.HasSuffix(tmp, ".eml") || !strings.HasPrefix(filepath.Base(tmp), ".") {
			t.Errorf("temporary file %s looks like a message", tmp)
		}
		if eml, _ := filepath.Glob(filepath.Join(dir, "*.eml")); len(eml) != 0 {
			t.Errorf("%v visible before the message was published", eml)
		}
		data, err := os.ReadFile(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("END-OF-MESSAGE")) {
			t.Errorf("temporary file is not complete when published (%d bytes)", len(data))
		}
		if fi, err := os.Stat(tmp); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("temporary file mode: %v %v", fi.Mode(), err)
		}
	}
	msg := commands.Message{To: "a@example.com", Subject: "s", TextBody: "body\nEND-OF-MESSAGE"}
	if err := b.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if !seen {
		t.Fatal("Send did not go through a temporary file")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".eml") {
		t.Errorf("outbox holds %v, want one .eml and no leftovers", entries)
	}
}

func mustAddress(tb testing.TB, s string) *netmail.Address {
	tb.Helper()
	a, err := netmail.ParseAddress(s)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
