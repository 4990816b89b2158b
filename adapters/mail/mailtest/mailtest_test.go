package mailtest_test

import (
	"testing"

	"github.com/dashtam/dashtam/adapters/mail/mailtest"
)

func TestFindLinkTokenMatchesThePathExactly(t *testing.T) {
	const text = "Open https://d.test/verify-email-old?token=no or\n" +
		"https://d.test/verify-email?token=a%2Bb_c-1 within 24 hours.\n"
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"/verify-email", "a+b_c-1", true},
		{"/verify-email-old", "no", true},
		{"/reset-password", "", false},
	} {
		got, ok := mailtest.FindLinkToken(text, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FindLinkToken(%s) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseDecodesMultipartQuotedPrintable(t *testing.T) {
	raw := "To: =?utf-8?q?Ad=C3=A9le?= <a@example.com>\r\n" +
		"Subject: =?utf-8?q?V=C3=A9rifiez?=\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"caf=C3=A9 https://d.test/x?token=3Dabc\r\n\r\n" +
		"--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n" +
		"--B--\r\n"
	p := mailtest.Parse(t, []byte(raw))
	if p.To != "Adéle <a@example.com>" || p.Subject != "Vérifiez" {
		t.Errorf("To %q, Subject %q", p.To, p.Subject)
	}
	if p.Text != "café https://d.test/x?token=abc\n" || p.HTML != "<p>hi</p>" {
		t.Errorf("Text %q, HTML %q", p.Text, p.HTML)
	}
}
