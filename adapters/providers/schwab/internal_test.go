package schwab

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2024, 4, 4, 15, 56, 7, 0, time.UTC)
	for _, s := range []string{
		"2024-04-04T15:56:07+0000",
		"2024-04-04T15:56:07.000Z",
		"2024-04-04T15:56:07Z",
		"2024-04-04T15:56:07+00:00",
		"2024-04-04T15:56:07.000+0000",
		"2024-04-04T15:56:07.000000+00:00",
		"2024-04-04T11:56:07-0400",
		"2024-04-04T11:56:07-04:00",
		"2024-04-04T15:56:07",
		" 2024-04-04T15:56:07+0000 ",
	} {
		got, err := parseTimestamp(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %s, %v", s, got, err)
		}
	}
	if got, err := parseTimestamp("2024-04-04T15:56:07.25Z"); err != nil || got.Nanosecond() != 250_000_000 {
		t.Errorf("fraction: %s %v", got, err)
	}
	if got, err := parseTimestamp("2024-04-04"); err != nil || !got.Equal(time.Date(2024, 4, 4, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date: %s %v", got, err)
	}
	for _, s := range []string{"", "yesterday", "2024-04-04 15:56:07", "04/04/2024"} {
		if _, err := parseTimestamp(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 4, 17, 15, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":            0,
		"7":           7 * time.Second,
		" 120 ":       2 * time.Minute,
		"0":           0,
		"-5":          0,
		"soon":        0,
		"99999999999": 24 * time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
		"Thursday, 17-Apr-25 15:01:00 GMT":                time.Minute, // RFC 850, still legal
	}
	for v, want := range tests {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := retryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	got := scrub("token abc.def@ refused for account 31415926\n at "+strings.Repeat("x", 300), "abc.def@")
	if strings.Contains(got, "abc.def@") || strings.Contains(got, "31415926") || strings.Contains(got, "\n") || len([]rune(got)) > 201 {
		t.Fatalf("scrubbed %q", got)
	}
}

func TestMaskerRaw(t *testing.T) {
	m := newMasker("31415926", "27182818", "")
	got, err := m.raw(json.RawMessage(`{"accountNumber":31415926,"b":{"accountNumber":"27182818"},"c":["to 27182818",31415926,314159260],"d":"<&>","n":1.50}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"accountNumber":"****5926","b":{"accountNumber":"****2818"},"c":["to ****2818","****5926",314159260],"d":"<&>","n":1.50}`
	if string(got) != want {
		t.Fatalf("masked\n%s\nwant\n%s", got, want)
	}
	if mask("1234") != "****" || mask("12345") != "****2345" {
		t.Fatal("mask")
	}
}
