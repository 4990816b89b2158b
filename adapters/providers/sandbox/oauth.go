package sandbox

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxFormBytes bounds the body of every form the institution reads.
const maxFormBytes = 16 << 10

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="sandbox"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// client authenticates the caller of the token and revoke endpoints, by
// HTTP Basic (client_secret_basic) or by form fields (client_secret_post).
func (i *Institution) client(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: both parts are form-urlencoded inside Basic.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return false
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(i.cfg.ClientID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(i.cfg.ClientSecret))
	return idOK&secretOK == 1
}

// parseForm reads a bounded form body.
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	return r.ParseForm() == nil
}

// token is the token endpoint: authorization_code (with PKCE) and
// refresh_token grants.
func (i *Institution) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Pragma", "no-cache")
	if !parseForm(w, r) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	if !i.client(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	now := i.now()
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		i.exchange(w, r, now)
	case "refresh_token":
		c, err := i.signer.verify(kindRefresh, r.PostForm.Get("refresh_token"))
		switch {
		case err != nil || c.Client != i.cfg.ClientID:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		case now.Unix() >= c.HardExpiry:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token expired: authorise again")
		case i.isRevoked(c.Grant):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked")
		default:
			i.issue(w, c, c.HardExpiry, now)
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

// exchange trades a code for tokens. A code is single-use: presenting a
// spent one revokes the grant it started (RFC 6749 §4.1.2).
func (i *Institution) exchange(w http.ResponseWriter, r *http.Request, now time.Time) {
	f := r.PostForm
	c, err := i.signer.verify(kindCode, f.Get("code"))
	verifier := f.Get("code_verifier")
	switch {
	case err != nil || c.Client != i.cfg.ClientID:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown authorization code")
	case now.Unix() >= c.ExpiresAt:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "authorization code expired")
	case f.Get("redirect_uri") != c.Redirect:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
	case !validVerifier(verifier) || pkceS256(verifier) != c.Challenge:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
	case i.isRevoked(c.Grant):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "authorization revoked")
	case !i.spend(c.Nonce, c.ExpiresAt):
		i.revokeGrant(c.Grant, now.Add(c.Persona.lifetimes().refresh).Unix())
		oauthError(w, http.StatusBadRequest, "invalid_grant", "authorization code already used")
	default:
		i.issue(w, c, now.Add(c.Persona.lifetimes().refresh).Unix(), now)
	}
}

// tokenResponse is the token endpoint's answer (RFC 6749 §5.1) with the
// refresh token's hard expiry as an extension, so clients know when the
// user must authorise again.
type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	TokenType             string `json:"token_type"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	RefreshTokenExpiresAt int64  `json:"refresh_token_expires_at"`
	Scope                 string `json:"scope"`
}

// grantedScope is the only scope: read everything.
const grantedScope = "read"

// issue answers a new access token and a new refresh token of c's grant;
// the refresh token keeps the grant's hard expiry.
func (i *Institution) issue(w http.ResponseWriter, c claims, hard int64, now time.Time) {
	base := claims{Grant: c.Grant, Seed: c.Seed, Persona: c.Persona, Client: c.Client,
		IssuedAt: now.Unix(), HardExpiry: hard, Scope: grantedScope}
	access := base
	access.ExpiresAt = min(now.Add(c.Persona.lifetimes().access).Unix(), hard)
	access.Nonce = randomID(12)
	refresh := base
	refresh.ExpiresAt = hard
	refresh.Nonce = randomID(12)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: i.signer.sign(kindAccess, access), TokenType: "Bearer",
		ExpiresIn:    secondsUntil(now, access.ExpiresAt),
		RefreshToken: i.signer.sign(kindRefresh, refresh), RefreshTokenExpiresIn: secondsUntil(now, hard),
		RefreshTokenExpiresAt: hard, Scope: grantedScope,
	})
}

// revoke is RFC 7009's endpoint: revoking an access or refresh token
// revokes its whole grant. It answers 200 for tokens it does not know, as
// the RFC requires, so it reveals nothing about them.
func (i *Institution) revoke(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	if !i.client(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	kinds := []tokenKind{kindRefresh, kindAccess}
	if r.PostForm.Get("token_type_hint") == "access_token" {
		kinds = []tokenKind{kindAccess, kindRefresh}
	}
	for _, k := range kinds {
		if c, err := i.signer.verify(k, token); err == nil && c.Client == i.cfg.ClientID {
			i.revokeGrant(c.Grant, c.HardExpiry)
			break
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// bearer returns the access token's claims when r carries a valid one.
func (i *Institution) bearer(r *http.Request) (claims, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return claims{}, false
	}
	c, err := i.signer.verify(kindAccess, strings.TrimSpace(token))
	if err != nil || i.now().Unix() >= c.ExpiresAt || i.isRevoked(c.Grant) {
		return claims{}, false
	}
	return c, true
}
