package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Prefix is the path under which the server mounts Institution.Handler;
// the handler serves only paths below it.
const Prefix = "/sandbox"

// Paths of the institution below Prefix.
const (
	AuthorizePath = "/oauth/authorize"
	TokenPath     = "/oauth/token"
	RevokePath    = "/oauth/revoke"
	APIPath       = "/api/v1"
)

// Config configures the institution.
type Config struct {
	// Key signs codes and tokens; at least 32 bytes. The same key after a
	// restart keeps every issued token valid.
	Key []byte
	// ClientID and ClientSecret are the one client's credentials (the
	// Dashtam server's), checked on the token and revoke endpoints.
	ClientID     string
	ClientSecret string
	// RedirectURIs are the registered callbacks; an authorisation request
	// must name one of them exactly.
	RedirectURIs []string
	// ClientName is the application the authorize page names; "Dashtam"
	// when empty.
	ClientName string
	// Now is the clock every token and all data follow; time.Now when nil.
	Now func() time.Time
}

// minKeyLen is the shortest signing key accepted: HMAC-SHA256's block of
// security.
const minKeyLen = 32

// Institution is the sandbox bank: its authorize page, OAuth endpoints and
// data API, as one http.Handler. Only revocations, spent codes and the
// flaky persona's call counters live in memory; everything else is in the
// signed tokens or computed from them.
type Institution struct {
	cfg     Config
	signer  signer
	now     func() time.Time
	handler http.Handler

	mu sync.Mutex
	// revoked maps a revoked grant to when its tokens expire anyway, after
	// which it can be forgotten.
	revoked map[string]int64
	// spent maps a used code's nonce to the code's expiry.
	spent map[string]int64
	// calls counts the authenticated data calls of each flaky grant.
	calls map[string]uint64
}

// Bounds of the in-memory state, so that no caller can grow it without
// limit: expired entries are swept when a map reaches its bound, and the
// flaky counters restart from zero when theirs is full.
const (
	maxRevoked = 100_000
	maxSpent   = 100_000
	maxCounted = 10_000
)

// NewInstitution returns the institution cfg describes.
func NewInstitution(cfg Config) (*Institution, error) {
	switch {
	case len(cfg.Key) < minKeyLen:
		return nil, fmt.Errorf("sandbox: signing key has %d bytes, want at least %d", len(cfg.Key), minKeyLen)
	case cfg.ClientID == "" || cfg.ClientSecret == "":
		return nil, errors.New("sandbox: client id and secret are required")
	case len(cfg.RedirectURIs) == 0:
		return nil, errors.New("sandbox: at least one redirect URI is required")
	}
	for _, r := range cfg.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("sandbox: redirect URI %q must be an absolute http(s) URL without fragment", r)
		}
	}
	if cfg.ClientName == "" {
		cfg.ClientName = "Dashtam"
	}
	cfg.Key = slices.Clone(cfg.Key)
	cfg.RedirectURIs = slices.Clone(cfg.RedirectURIs)
	i := &Institution{cfg: cfg, signer: newSigner(cfg.Key), now: cfg.Now,
		revoked: map[string]int64{}, spent: map[string]int64{}, calls: map[string]uint64{}}
	if i.now == nil {
		i.now = time.Now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+AuthorizePath, i.authorizePage)
	mux.HandleFunc("POST "+Prefix+AuthorizePath, i.authorizeDecision)
	mux.HandleFunc("POST "+Prefix+TokenPath, i.token)
	mux.HandleFunc("POST "+Prefix+RevokePath, i.revoke)
	mux.HandleFunc("GET "+Prefix+APIPath+"/accounts", i.data(i.listAccounts))
	mux.HandleFunc("GET "+Prefix+APIPath+"/accounts/{id}", i.data(i.getAccount))
	mux.HandleFunc("GET "+Prefix+APIPath+"/accounts/{id}/transactions", i.data(i.listTransactions))
	mux.HandleFunc("GET "+Prefix+APIPath+"/accounts/{id}/positions", i.data(i.listPositions))
	mux.HandleFunc(Prefix+APIPath+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such endpoint")
	})
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	i.handler = mux
	return i, nil
}

// Handler returns the institution's HTTP handler; mount it so that it sees
// request paths starting with Prefix.
func (i *Institution) Handler() http.Handler { return i.handler }

// revokeGrant refuses every token of grant from now on (until until, when
// they have all expired anyway).
func (i *Institution) revokeGrant(grant string, until int64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.revoked) >= maxRevoked {
		sweep(i.revoked, i.now().Unix())
	}
	if len(i.revoked) < maxRevoked {
		i.revoked[grant] = until
	}
}

func (i *Institution) isRevoked(grant string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, ok := i.revoked[grant]
	return ok
}

// spend marks a code as used and reports whether it was unused.
func (i *Institution) spend(nonce string, expires int64) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, used := i.spent[nonce]; used {
		return false
	}
	if len(i.spent) >= maxSpent {
		sweep(i.spent, i.now().Unix())
	}
	if len(i.spent) >= maxSpent {
		return false // full of live codes: refuse rather than forget one
	}
	i.spent[nonce] = expires
	return true
}

// countCall returns the number of grant's authenticated data calls so far,
// this one included.
func (i *Institution) countCall(grant string) uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.calls[grant]; !ok && len(i.calls) >= maxCounted {
		clear(i.calls)
	}
	i.calls[grant]++
	return i.calls[grant]
}

// sweep deletes the entries of m whose time has passed.
func sweep(m map[string]int64, now int64) {
	for k, until := range m {
		if until <= now {
			delete(m, k)
		}
	}
}

// secondsUntil returns the whole seconds from now to Unix second exp,
// rounded down so a client's estimate of the expiry is never late.
func secondsUntil(now time.Time, exp int64) int64 {
	s := exp - now.Unix()
	if now.Nanosecond() > 0 {
		s--
	}
	return max(s, 0)
}

// writeJSON writes v with status; every answer of the sandbox is private.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes the data endpoints' error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, wireError{Error: wireErrorDetail{Code: code, Message: message}})
}
