// Package mailtest reads mail the way a mail client would, for tests of
// anything that sends it: it parses a message into its decoded fields and
// bodies, reads a file:// outbox in send order, and finds the token of a
// mailed link. One reader for every test, so that a change to how messages
// are encoded is checked the same way everywhere.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Parsed is one message as a mail client shows it.
type Parsed struct {
	// Header holds every field as sent, for checks on encoding and addresses.
	Header netmail.Header
	// To is the To field with RFC 2047 encoded words decoded.
	To string
	// Subject is the Subject field with RFC 2047 encoded words decoded.
	Subject string
	// Text is the decoded text/plain body (or part), line ends as "\n".
	Text string
	// HTML is the decoded text/html part, line ends as "\n"; empty if none.
	HTML string
}

// Parse parses raw as RFC 5322 and decodes its text and HTML parts, failing
// the test on anything a mail client would choke on.
func Parse(tb testing.TB, raw []byte) Parsed {
	tb.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("parse message: %v\n%s", err, raw)
	}
	p := Parsed{
		Header:  m.Header,
		To:      DecodeHeader(tb, m.Header.Get("To")),
		Subject: DecodeHeader(tb, m.Header.Get("Subject")),
	}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		tb.Fatalf("parse Content-Type: %v", err)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		p.Text = decodeBody(tb, m.Header.Get("Content-Transfer-Encoding"), m.Body)
		return p
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		// Raw parts: NextPart would undo quoted-printable itself and hide
		// an encoding the message got wrong.
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatalf("read mail part: %v", err)
		}
		body := decodeBody(tb, part.Header.Get("Content-Transfer-Encoding"), part)
		switch ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct {
		case "text/plain":
			p.Text = body
		case "text/html":
			p.HTML = body
		}
	}
	return p
}

// decodeBody undoes a body's transfer encoding and normalises line ends.
func decodeBody(tb testing.TB, cte string, r io.Reader) string {
	tb.Helper()
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("read mail body: %v", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// DecodeHeader undoes RFC 2047 encoding, as a mail client shows the field.
func DecodeHeader(tb testing.TB, v string) string {
	tb.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		tb.Fatalf("decode header %q: %v", v, err)
	}
	return s
}

// ReadOutbox parses every complete message of a file:// outbox, oldest
// first and newest last: the outbox names files so that their lexical
// order is the send order, and its unfinished files lack the .eml suffix.
func ReadOutbox(tb testing.TB, dir string) []Parsed {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(names)
	out := make([]Parsed, 0, len(names))
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, Parse(tb, raw))
	}
	return out
}

// linkRE matches the absolute links of a text body; a link ends at white
// space or at what would close it in prose or markup.
var linkRE = regexp.MustCompile(`https?://[^\s"'<>]+`)

// LinkToken returns the "token" query parameter of the first link in text
// whose path is path, failing the test if there is none: a mail that links
// to another path than the one asked for is a broken mail.
func LinkToken(tb testing.TB, text, path string) string {
	tb.Helper()
	if token, ok := FindLinkToken(text, path); ok {
		return token
	}
	tb.Fatalf("no link to %s with a token in the mail:\n%s", path, text)
	return ""
}

// FindLinkToken is LinkToken without failing: ok is false when text has
// no link to path carrying a token.
func FindLinkToken(text, path string) (token string, ok bool) {
	for _, raw := range linkRE.FindAllString(text, -1) {
		u, err := url.Parse(raw)
		if err != nil || u.Path != path {
			continue
		}
		if t := u.Query().Get("token"); t != "" {
			return t, true
		}
	}
	return "", false
}
