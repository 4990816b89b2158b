package schwab

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/dashtam/dashtam/commands"
)

// Schwab's production endpoints, the defaults of Config.
const (
	// DefaultAuthURL is where users grant access.
	DefaultAuthURL = "https://api.schwabapi.com/v1/oauth/authorize"
	// DefaultTokenURL is where codes and refresh tokens are exchanged.
	DefaultTokenURL = "https://api.schwabapi.com/v1/oauth/token"
	// DefaultAPIBaseURL is the Trader API's root.
	DefaultAPIBaseURL = "https://api.schwabapi.com/trader/v1"
)

// DefaultTimeout bounds one HTTP exchange with Schwab (connection, request
// and the whole body) when Config.HTTPClient is nil.
const DefaultTimeout = 30 * time.Second

// MinAccountIDKeyLen is the shortest Config.AccountIDKey New accepts.
const MinAccountIDKeyLen = 32

// Config is what the adapter needs to talk to Schwab on behalf of one
// registered app.
type Config struct {
	// ClientID is the app key Schwab issued.
	ClientID string
	// ClientSecret is the app secret; it goes only into the token
	// request's Basic authorization header.
	ClientSecret string
	// RedirectURI is the callback registered with the app, matched by
	// Schwab exactly (case, trailing slash); https, or http on a loopback
	// host for tests.
	RedirectURI string
	// AuthURL is the authorize endpoint, DefaultAuthURL when empty.
	AuthURL string
	// TokenURL is the token endpoint, DefaultTokenURL when empty.
	TokenURL string
	// APIBaseURL is the Trader API root, DefaultAPIBaseURL when empty.
	APIBaseURL string
	// AccountIDKey keys the HMAC that derives ProviderAccount.ID from an
	// account number (at least MinAccountIDKeyLen bytes). It must never
	// change: account ids, and the streams named after them, derive from it.
	AccountIDKey []byte
	// HTTPClient makes every call, token exchanges included; nil means a
	// client with DefaultTimeout. A client without a Timeout is refused,
	// so that a stalled Schwab cannot hold a sync forever.
	HTTPClient *http.Client
	// Clock stamps expiries and reads Retry-After dates; nil means
	// time.Now.
	Clock commands.Clock
}

// Adapter is the Schwab implementation of commands.Provider; it holds no
// state beyond its configuration and is safe for concurrent use.
type Adapter struct {
	oauth  oauth2.Config
	api    string
	idKey  []byte
	client *http.Client
	clock  commands.Clock
}

var _ commands.Provider = (*Adapter)(nil)

// New returns the adapter for cfg, refusing a configuration that could
// only fail later (missing app credentials, relative URLs, a weak id key, a
// client without timeout).
func New(cfg Config) (*Adapter, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("schwab: client id and client secret are required")
	}
	if err := checkRedirectURI(cfg.RedirectURI); err != nil {
		return nil, err
	}
	authURL, err := absoluteURL("auth url", cfg.AuthURL, DefaultAuthURL)
	if err != nil {
		return nil, err
	}
	tokenURL, err := absoluteURL("token url", cfg.TokenURL, DefaultTokenURL)
	if err != nil {
		return nil, err
	}
	apiURL, err := absoluteURL("api base url", cfg.APIBaseURL, DefaultAPIBaseURL)
	if err != nil {
		return nil, err
	}
	if len(cfg.AccountIDKey) < MinAccountIDKeyLen {
		return nil, fmt.Errorf("schwab: account id key must be at least %d bytes", MinAccountIDKeyLen)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = defaultHTTPClient()
	} else if client.Timeout <= 0 {
		return nil, errors.New("schwab: http client needs a timeout")
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	return &Adapter{
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURI,
			Endpoint: oauth2.Endpoint{
				AuthURL:  authURL,
				TokenURL: tokenURL,
				// Schwab wants the app key and secret in a Basic header,
				// not in the body; naming the style also stops oauth2 from
				// probing with a second request.
				AuthStyle: oauth2.AuthStyleInHeader,
			},
		},
		api:    strings.TrimRight(apiURL, "/"),
		idKey:  append([]byte(nil), cfg.AccountIDKey...),
		client: client,
		clock:  clock,
	}, nil
}

// Info describes Schwab for the catalog; Schwab takes no PKCE challenge.
func (a *Adapter) Info() commands.ProviderInfo {
	return commands.ProviderInfo{Slug: "schwab", Name: "Charles Schwab", AuthType: "oauth2", PKCE: false}
}

func (a *Adapter) now() time.Time { return a.clock.Now() }

// defaultHTTPClient bounds every phase of a call, not only the whole.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: DefaultTimeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 25 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ForceAttemptHTTP2:     true,
		},
	}
}

func absoluteURL(name, v, def string) (string, error) {
	if v == "" {
		v = def
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("schwab: %s %q is not an absolute http(s) URL", name, v)
	}
	return v, nil
}

// checkRedirectURI refuses what Schwab would refuse at authorisation time,
// with a message at start-up instead of a failed connect later.
func checkRedirectURI(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return fmt.Errorf("schwab: redirect uri %q is not an absolute URL", v)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("schwab: redirect uri %q must be https (Schwab refuses other callbacks)", v)
}
