package mail_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dashtam/dashtam/adapters/mail"
	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/commands"
)

// emlName is the documented file name: UTC time in ISO 8601 basic format
// with nanoseconds, a random suffix, .eml.
var emlName = regexp.MustCompile(`^\d{8}T\d{6}\.\d{9}Z-[0-9a-f]{16}\.eml$`)

// MustOutbox returns a file Mailer over a fresh directory that does not exist
// yet, so the tests also see New create it.
func MustOutbox(tb testing.TB, opts ...mail.Option) (commands.Mailer, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "data", "mail")
	return MustNew(tb, "file://"+dir, opts...), dir
}

// listEML returns the complete messages in dir, sorted by name.
func listEML(tb testing.TB, dir string) []string {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func TestOutboxWritesOneParseableFile(t *testing.T) {
	m, dir := MustOutbox(t)
	if err := m.Send(context.Background(), verificationMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("outbox holds %d entries, want exactly one .eml: %v", len(entries), entries)
	}
	name := entries[0].Name()
	if !emlName.MatchString(name) {
		t.Errorf("file name %q does not match %s", name, emlName)
	}

	// The link inside is a credential: owner-only access.
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, name), 0o600)

	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	p := mailtest.Parse(t, raw)
	if from := p.Header.Get("From"); from != `"Dashtam" <no-reply@localhost>` && from != "Dashtam <no-reply@localhost>" {
		t.Errorf("From = %q, want the default sender", from)
	}
	if to, err := p.Header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "alice@example.com" || to[0].Name != "Alice Example" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if s := p.Subject; s != verificationMessage().Subject {
		t.Errorf("Subject = %q", s)
	}
	if v := p.Header.Get("X-Dashtam-Trace-Id"); v != "trace-42" {
		t.Errorf("X-Dashtam-Trace-Id = %q", v)
	}
	if _, err := p.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if want := verificationMessage().TextBody; strings.TrimRight(p.Text, "\n") != want {
		t.Errorf("text body = %q, want %q", p.Text, want)
	}
	if !strings.Contains(p.HTML, "token=abc123") {
		t.Errorf("html body = %q", p.HTML)
	}
}

func assertMode(tb testing.TB, path string, want os.FileMode) {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		tb.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

func TestOutboxTextOnlyAndCustomFrom(t *testing.T) {
	m, dir := MustOutbox(t, mail.WithFrom("Dashtam Support <support@dashtam.test>"))
	msg := commands.Message{To: "bob@example.com", Subject: "Reset", TextBody: "plain only"}
	if err := m.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	files := listEML(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	p := mailtest.Parse(t, raw)
	if from, err := p.Header.AddressList("From"); err != nil || from[0].Address != "support@dashtam.test" {
		t.Errorf("From = %v (%v)", from, err)
	}
	if strings.TrimRight(p.Text, "\n") != "plain only" || p.HTML != "" {
		t.Errorf("text %q html %q", p.Text, p.HTML)
	}
}

func TestOutboxSequentialNamesSortInSendOrder(t *testing.T) {
	m, dir := MustOutbox(t)
	const n = 20
	for i := range n {
		msg := commands.Message{To: fmt.Sprintf("u%02d@example.com", i), Subject: "s", TextBody: "b"}
		if err := m.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	files := listEML(t, dir)
	if len(files) != n {
		t.Fatalf("%d files, want %d", len(files), n)
	}
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		to, err := mailtest.Parse(t, raw).Header.AddressList("To")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("u%02d@example.com", i); to[0].Address != want {
			t.Fatalf("file %d by name holds mail to %s, want %s", i, to[0].Address, want)
		}
	}
}

func TestOutboxConcurrentSendsNeverExposePartialFiles(t *testing.T) {
	m, dir := MustOutbox(t)
	const writers, perWriter = 8, 25
	// A large body makes a torn write likely to show if files were written
	// in place.
	body := strings.Repeat("0123456789abcdef ", 8192) + "\nEND-OF-MESSAGE"

	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				msg := commands.Message{
					To:       fmt.Sprintf("w%d-%d@example.com", w, i),
					Subject:  "concurrent",
					TextBody: body,
				}
				if err := m.Send(context.Background(), msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	// Read every .eml that appears while the writers run: each must already
	// be complete.
	checked := map[string]bool{}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		for _, f := range listEML(t, dir) {
			if checked[f] {
				continue
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if p := mailtest.Parse(t, raw); !strings.HasSuffix(strings.TrimRight(p.Text, "\n"), "END-OF-MESSAGE") {
				t.Fatalf("%s is visible but incomplete (%d bytes)", f, len(raw))
			}
			checked[f] = true
		}
	}

	files := listEML(t, dir)
	if len(files) != writers*perWriter {
		t.Fatalf("%d .eml files, want %d distinct ones", len(files), writers*perWriter)
	}
	recipients := map[string]bool{}
	for _, f := range files {
		if !emlName.MatchString(filepath.Base(f)) {
			t.Errorf("bad name %s", f)
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		to, err := mailtest.Parse(t, raw).Header.AddressList("To")
		if err != nil {
			t.Fatal(err)
		}
		recipients[to[0].Address] = true
	}
	if len(recipients) != writers*perWriter {
		t.Errorf("%d distinct recipients across files, want %d", len(recipients), writers*perWriter)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("outbox holds %d entries but %d .eml files: temporary files left behind", len(entries), len(files))
	}
}

func TestInvalidMessagesAreRejected(t *testing.T) {
	ok := verificationMessage()
	with := func(f func(*commands.Message)) commands.Message {
		m := ok
		m.Headers = map[string]string{}
		f(&m)
		return m
	}
	tests := map[string]commands.Message{
		"empty recipient":         with(func(m *commands.Message) { m.To = "" }),
		"unparsable recipient":    with(func(m *commands.Message) { m.To = "not an address" }),
		"two recipients":          with(func(m *commands.Message) { m.To = "a@example.com, b@example.com" }),
		"CRLF in recipient":       with(func(m *commands.Message) { m.To = "a@example.com\r\nBcc: victim@example.com" }),
		"folded recipient":        with(func(m *commands.Message) { m.To = "Alice\r\n <a@example.com>" }),
		"LF in subject":           with(func(m *commands.Message) { m.Subject = "hi\nBcc: victim@example.com" }),
		"CR in subject":           with(func(m *commands.Message) { m.Subject = "hi\rthere" }),
		"NUL in subject":          with(func(m *commands.Message) { m.Subject = "hi\x00" }),
		"CRLF in header value":    with(func(m *commands.Message) { m.Headers["X-Trace"] = "1\r\nBcc: victim@example.com" }),
		"colon in header name":    with(func(m *commands.Message) { m.Headers["X-A:B"] = "v" }),
		"space in header name":    with(func(m *commands.Message) { m.Headers["X A"] = "v" }),
		"CRLF in header name":     with(func(m *commands.Message) { m.Headers["X-A\r\nBcc"] = "v" }),
		"reserved header Bcc":     with(func(m *commands.Message) { m.Headers["bcc"] = "victim@example.com" }),
		"reserved header From":    with(func(m *commands.Message) { m.Headers["From"] = "ceo@example.com" }),
		"reserved header Content": with(func(m *commands.Message) { m.Headers["Content-Type"] = "text/html" }),
		"empty text body":         with(func(m *commands.Message) { m.TextBody = "" }),
	}
	m, dir := MustOutbox(t)
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			err := m.Send(context.Background(), msg)
			if !errors.Is(err, commands.ErrInvalidMessage) {
				t.Fatalf("Send = %v, want ErrInvalidMessage", err)
			}
		})
	}
	if files := listEML(t, dir); len(files) != 0 {
		t.Errorf("invalid messages produced files: %v", files)
	}
}

func TestOutboxHonoursCancelledContext(t *testing.T) {
	m, dir := MustOutbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Send(ctx, verificationMessage()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want context.Canceled", err)
	}
	if files := listEML(t, dir); len(files) != 0 {
		t.Errorf("files written after cancellation: %v", files)
	}
}
