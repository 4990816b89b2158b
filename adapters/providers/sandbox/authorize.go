package sandbox

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// defaultUser is the sandbox user when the page's field is left empty.
const defaultUser = "user_good"

// Bounds of what the authorize request and form may carry.
const (
	maxStateLen = 1024
	maxUserLen  = 64
)

// authorizeTemplate is the authorize page: a plain form, no script and no
// external asset, so it works under a strict Content-Security-Policy.
var authorizeTemplate = template.Must(template.New("authorize").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Sandbox Bank - {{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f3f5f7;color:#1d2733;margin:0}
main{max-width:34rem;margin:2.5rem auto;background:#fff;border:1px solid #d8dee4;border-radius:.6rem;padding:1.5rem 2rem}
.bank{font-weight:700;letter-spacing:.04em;color:#0b5a8a}
.note{background:#fff7e0;border:1px solid #f0d48a;border-radius:.4rem;padding:.6rem .8rem;font-size:.92rem}
fieldset{border:1px solid #d8dee4;border-radius:.4rem;margin:1rem 0;padding:.6rem 1rem}
label{display:block;margin:.5rem 0}
.hint{display:block;color:#5b6875;font-size:.88rem;margin-left:1.6rem}
input[type=text]{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}
.actions{display:flex;gap:1rem;margin-top:1.2rem}
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:.4rem;border:1px solid #0b5a8a;cursor:pointer}
button.approve{background:#0b5a8a;color:#fff}
button.deny{background:#fff;color:#0b5a8a}
</style>
</head>
<body>
<main>
<p class="bank">SANDBOX BANK</p>
<h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Form}}
<p><strong>{{.Client}}</strong> asks to read your accounts at Sandbox Bank:</p>
<ul>
<li>account names and the last four digits of their numbers</li>
<li>balances and investment positions</li>
<li>transactions of the last thirteen months</li>
</ul>
<p>It cannot move money. You will return to <strong>{{.ReturnTo}}</strong>.</p>
<p class="note">Sandbox Bank is a test institution: no real bank and no real money. Any user name works, and the same name always shows the same data.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.Request}}">
<label for="user">Sandbox user</label>
<input type="text" id="user" name="user" value="{{.User}}" maxlength="64" autocomplete="off">
<fieldset>
<legend>Persona</legend>
{{range .Personas}}<label><input type="radio" name="persona" value="{{.Name}}"{{if .Checked}} checked{{end}}> {{.Name}}<span class="hint">{{.Description}}</span></label>
{{end}}</fieldset>
<div class="actions">
<button type="submit" class="approve" id="approve" name="decision" value="approve">Approve</button>
<button type="submit" class="deny" id="deny" name="decision" value="deny" formnovalidate>Deny</button>
</div>
</form>
{{end}}
</main>
</body>
</html>
`))

// authorizeView is what authorizeTemplate shows.
type authorizeView struct {
	Title, Message                          string
	Form                                    bool
	Client, ReturnTo, Action, Request, User string
	Personas                                []personaOption
	// formTarget is the redirect URI's origin, allowed as a form target.
	formTarget string
}

// personaOption is one radio button.
type personaOption struct {
	Name        Persona
	Description string
	Checked     bool
}

// renderAuthorize writes the page with headers that keep it out of caches
// and frames; form-action names the callback's origin because browsers
// apply it to the redirect that follows the form's submission.
func renderAuthorize(w http.ResponseWriter, status int, v authorizeView) {
	var buf bytes.Buffer
	if err := authorizeTemplate.Execute(&buf, v); err != nil {
		http.Error(w, "render authorize page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	formAction := "'self'"
	if v.formTarget != "" {
		formAction += " " + v.formTarget
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+formAction+
		"; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows a request that cannot be sent back to the application:
// an unknown client or callback must never receive a redirect.
func errorPage(w http.ResponseWriter, status int, msg string) {
	renderAuthorize(w, status, authorizeView{Title: "Cannot authorise", Message: msg})
}

// authorizePage validates an authorisation request and shows the consent form.
func (i *Institution) authorizePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	switch {
	case q.Get("client_id") != i.cfg.ClientID:
		errorPage(w, http.StatusBadRequest, "The application is not registered with Sandbox Bank.")
		return
	case !slices.Contains(i.cfg.RedirectURIs, redirect):
		errorPage(w, http.StatusBadRequest, "The application's return address is not registered with Sandbox Bank.")
		return
	}
	state := q.Get("state")
	fail := func(code, description string) {
		redirectTo(w, r, redirect, url.Values{"error": {code}, "error_description": {description}}, state)
	}
	challenge := q.Get("code_challenge")
	switch {
	case len(state) > maxStateLen:
		fail("invalid_request", "state is too long")
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
	case challenge == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
	case !validChallenge(challenge):
		fail("invalid_request", "code_challenge is not an S256 challenge")
	case !validScope(q.Get("scope")):
		fail("invalid_scope", "the only scope is "+grantedScope)
	default:
		hint := truncate(strings.TrimSpace(q.Get("login_hint")), maxUserLen)
		persona := Persona(q.Get("persona"))
		if !persona.Valid() {
			persona = PersonaForAlias(hint)
		}
		user := hint
		if user == "" {
			user = defaultUser
		}
		now := i.now()
		form := i.signer.sign(kindForm, claims{Client: i.cfg.ClientID, Redirect: redirect, Challenge: challenge,
			State: state, IssuedAt: now.Unix(), ExpiresAt: now.Add(formTTL).Unix(), Nonce: randomID(12)})
		v := authorizeView{Title: "Authorise access", Form: true, Client: i.cfg.ClientName, Action: Prefix + AuthorizePath,
			Request: form, User: user, formTarget: origin(redirect), ReturnTo: hostOf(redirect)}
		for _, p := range Personas {
			v.Personas = append(v.Personas, personaOption{Name: p, Description: personaDescriptions[p], Checked: p == persona})
		}
		renderAuthorize(w, http.StatusOK, v)
	}
}

// authorizeDecision reads the consent form and sends the browser back to
// the application with a code, or with access_denied.
func (i *Institution) authorizeDecision(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	f := r.PostForm
	c, err := i.signer.verify(kindForm, f.Get("request"))
	now := i.now()
	if err != nil || c.Client != i.cfg.ClientID || !slices.Contains(i.cfg.RedirectURIs, c.Redirect) {
		errorPage(w, http.StatusBadRequest, "This authorisation request is not valid; start again from the application.")
		return
	}
	if now.Unix() >= c.ExpiresAt {
		errorPage(w, http.StatusBadRequest, "This authorisation request has expired; start again from the application.")
		return
	}
	switch f.Get("decision") {
	case "deny":
		redirectTo(w, r, c.Redirect, url.Values{"error": {"access_denied"}}, c.State)
	case "approve":
		persona := Persona(f.Get("persona"))
		if f.Get("persona") == "" {
			persona = PersonaDefault
		}
		if !persona.Valid() {
			errorPage(w, http.StatusBadRequest, "Unknown persona.")
			return
		}
		user := truncate(strings.TrimSpace(f.Get("user")), maxUserLen)
		if user == "" {
			user = defaultUser
		}
		code := i.signer.sign(kindCode, claims{Grant: randomID(16), Seed: SeedForUser(user), Persona: persona,
			Client: c.Client, Redirect: c.Redirect, Challenge: c.Challenge, Scope: grantedScope,
			IssuedAt: now.Unix(), ExpiresAt: now.Add(codeTTL).Unix(), Nonce: randomID(12)})
		redirectTo(w, r, c.Redirect, url.Values{"code": {code}}, c.State)
	default:
		errorPage(w, http.StatusBadRequest, "Choose Approve or Deny.")
	}
}

// redirectTo sends the browser to the registered callback with params and
// the request's state.
func redirectTo(w http.ResponseWriter, r *http.Request, callback string, params url.Values, state string) {
	u, err := url.Parse(callback)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "The application's return address is not valid.")
		return
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// validScope accepts no scope or the one scope there is.
func validScope(s string) bool {
	for _, f := range strings.Fields(s) {
		if f != grantedScope {
			return false
		}
	}
	return true
}

// origin returns the scheme://host[:port] of a registered callback.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// hostOf returns the host[:port] of a registered callback.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
