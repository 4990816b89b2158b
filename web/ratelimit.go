package web

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/commands/ratelimit"
)

// rateLimitTimeout bounds one limiter check. The limiter fails open, and a
// database that hangs rather than errors must fail open too instead of
// stalling every limited request behind it.
const rateLimitTimeout = 500 * time.Millisecond

// Rate-limit response headers: the IETF httpapi draft's fields, plus the
// X- prefixed ones older clients read. Both carry the same values, Reset as
// delta seconds (not an epoch), so the two can never disagree.
const (
	headerRateLimitLimit      = "RateLimit-Limit"
	headerRateLimitRemaining  = "RateLimit-Remaining"
	headerRateLimitReset      = "RateLimit-Reset"
	headerXRateLimitLimit     = "X-RateLimit-Limit"
	headerXRateLimitRemaining = "X-RateLimit-Remaining"
	headerXRateLimitReset     = "X-RateLimit-Reset"
	headerRetryAfter          = "Retry-After"
)

// RateLimiter is the token-bucket store the rate-limit middleware charges;
// adapters/ratelimit's Limiter implements it over PostgreSQL. Allow returns an error
// only when the store fails, and the middleware then lets the request pass.
type RateLimiter interface {
	Allow(ctx context.Context, policy ratelimit.Policy, key string, now time.Time) (ratelimit.Decision, error)
}

// RateLimitOptions configures request rate limiting; with a nil Limiter no
// request is limited (the declarations are checked all the same).
type RateLimitOptions struct {
	// Limiter holds the buckets; the PostgreSQL one shares them across instances.
	Limiter RateLimiter
	// Local holds the buckets of policies marked Local, in this process's
	// memory (adapters/ratelimit's Memory); nil keeps them in Limiter.
	Local RateLimiter
	// Now is the clock buckets refill by; nil means time.Now. Tests pin it.
	Now func() time.Time
}

// keyFunc derives the bucket key of a request under one policy, or reports
// false to leave the request unlimited by it (no verified user, say).
type keyFunc func(echo.Context) (string, bool)

// rateRule charges one policy under the key its keyFunc derives.
type rateRule struct {
	policy ratelimit.Policy
	key    keyFunc
}

// rateLimits is the rate-limit middleware's state: the stores, the clock,
// the rules of every route, and where failures and denials are reported.
type rateLimits struct {
	limiter  RateLimiter // shared buckets
	local    RateLimiter // buckets of Local policies
	now      func() time.Time
	clientIP func(*http.Request) string // the bucket of the client's address
	log      *slog.Logger
	denied   *prometheus.CounterVec
	failures *prometheus.CounterVec
	// routes maps "METHOD /echo/path" to the policies charged before the
	// route's handler runs, in the order the declaration ranks them.
	routes map[string][]rateRule
	// afterLookup maps "METHOD /echo/path" to a per-user policy of a route
	// whose user only the identity service can tell (from a credential in
	// the body); it is charged through the identity.Admit the route's
	// handler hands to the service.
	afterLookup map[string]ratelimit.Policy
}

// admitKey keys a request's identity.Admit in its context.
type admitKey struct{}

// admitFrom returns the admission check limitRates attached to the request
// ctx belongs to, or nil (admit everyone) when its route has none or rate
// limiting is off.
func admitFrom(ctx context.Context) identity.Admit {
	a, _ := ctx.Value(admitKey{}).(identity.Admit)
	return a
}

// newRateLimits registers the rate-limit metrics on reg and turns the
// declarations of the document (decl) and of the server's own routes
// (own) into rules; it returns nil when opts has no limiter, which
// disables rate limiting. clientAddr finds a request's client address, as
// it does for the server's logs.
func newRateLimits(opts RateLimitOptions, decl rateDeclarations, own ownRouteRateLimits, clientAddr func(*http.Request) string, reg prometheus.Registerer, log *slog.Logger) (*rateLimits, error) {
	if opts.Limiter == nil {
		return nil, nil
	}
	rl := &rateLimits{
		limiter:  opts.Limiter,
		local:    opts.Local,
		now:      opts.Now,
		clientIP: func(r *http.Request) string { return bucketIP(clientAddr(r)) },
		log:      log,
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dashtam_rate_limit_denied_total",
			Help: "Requests refused with 429, by rate-limit policy.",
		}, []string{"policy"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dashtam_rate_limit_errors_total",
			Help: "Rate-limit checks that failed in the store and let the request pass, by policy.",
		}, []string{"policy"}),
		routes:      map[string][]rateRule{},
		afterLookup: map[string]ratelimit.Policy{},
	}
	if rl.now == nil {
		rl.now = time.Now
	}
	if rl.local == nil {
		rl.local = rl.limiter
	}
	for _, c := range []prometheus.Collector{rl.denied, rl.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register rate limit metrics: %w", err)
		}
	}
	for route, charges := range decl {
		for _, ch := range charges {
			switch {
			case ch.key == rateKeyIP:
				rl.routes[route] = append(rl.routes[route], rateRule{ch.policy, rl.byIP})
			case ch.key == rateKeyUser:
				rl.routes[route] = append(rl.routes[route], rateRule{ch.policy, byPrincipal})
			case strings.HasPrefix(ch.key, rateKeyUserParam):
				rl.routes[route] = append(rl.routes[route], rateRule{ch.policy, byPrincipalAndParam(strings.TrimPrefix(ch.key, rateKeyUserParam))})
			case ch.key == rateKeyTokenUser:
				// Only the identity service's lookup of the credential in
				// the body names the user; that lookup asks the admission
				// check this route gets.
				rl.afterLookup[route] = ch.policy
			default:
				return nil, fmt.Errorf("rate limit of %s: unknown key %q", route, ch.key)
			}
		}
	}
	for route, p := range own {
		rl.routes[route] = append(rl.routes[route], rateRule{p, rl.byIP})
	}
	return rl, nil
}

// limitRates charges every policy declared for the route, in order, and
// refuses the request with 429 at the first that is exhausted. The
// rate-limit headers describe the tightest bucket, so a client pacing
// itself by them never runs into another. It must run after authentication
// (which sets the verified caller) and before the body is read, so that a
// refused request costs no more than its check and malformed ones spend
// tokens too.
func (rl *rateLimits) limitRates(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Request().Method + " " + c.Path()
		if p, ok := rl.afterLookup[route]; ok {
			r := c.Request()
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), admitKey{}, rl.admitUser(c, p))))
		}
		var (
			tightest ratelimit.Decision
			found    bool
		)
		for _, rule := range rl.routes[route] {
			key, ok := rule.key(c)
			if !ok {
				continue
			}
			d, ok := rl.check(c.Request().Context(), rule.policy, key)
			if !ok {
				continue
			}
			if !d.Allowed {
				return rl.deny(c, rule.policy, d)
			}
			if !found || d.Remaining < tightest.Remaining {
				tightest, found = d, true
			}
		}
		if found {
			setRateLimitHeaders(c.Response().Header(), tightest)
		}
		return next(c)
	}
}

// admitUser returns the identity.Admit that charges policy p under the
// user the identity service names, with the same 429 problem and headers as
// the route rules; a store failure admits, as it does for them. An
// admitted request's headers describe this bucket when it is tighter than
// the per-IP one the route rules reported.
func (rl *rateLimits) admitUser(c echo.Context, p ratelimit.Policy) identity.Admit {
	return func(ctx context.Context, userID uuid.UUID) error {
		d, ok := rl.check(ctx, p, userID.String())
		if !ok {
			return nil
		}
		if !d.Allowed {
			return rl.deny(c, p, d)
		}
		h := c.Response().Header()
		if prev, err := strconv.Atoi(h.Get(headerRateLimitRemaining)); err != nil || d.Remaining <= prev {
			setRateLimitHeaders(h, d)
		}
		return nil
	}
}

// deny counts a refusal under policy p and answers it: the exhausted
// bucket's headers, Retry-After, and the 429 problem.
func (rl *rateLimits) deny(c echo.Context, p ratelimit.Policy, d ratelimit.Decision) error {
	rl.denied.WithLabelValues(p.Name).Inc()
	setRateLimitHeaders(c.Response().Header(), d)
	// At least 1: "Retry-After: 0" invites an immediate retry loop.
	c.Response().Header().Set(headerRetryAfter, strconv.FormatInt(ceilSeconds(d.RetryAfter, 1), 10))
	return Errorf(CodeRateLimited, "too many requests; retry in %d seconds", ceilSeconds(d.RetryAfter, 1))
}

// check asks the limiter about one policy; ok is false when the store
// failed, which is logged and counted and then ignored: an outage of the
// limiter's database must not lock every user out.
func (rl *rateLimits) check(ctx context.Context, p ratelimit.Policy, key string) (d ratelimit.Decision, ok bool) {
	checkCtx, cancel := context.WithTimeout(ctx, rateLimitTimeout)
	defer cancel()
	store := rl.limiter
	if p.Local {
		store = rl.local
	}
	d, err := store.Allow(checkCtx, p, key, rl.now())
	if err != nil {
		rl.failures.WithLabelValues(p.Name).Inc()
		// The key is left out: it is an IP address or a user id.
		rl.log.WarnContext(ctx, "rate limit check failed; request let through",
			"trace_id", TraceID(ctx), "policy", p.Name, "error", err.Error())
		return ratelimit.Decision{}, false
	}
	return d, true
}

// setRateLimitHeaders describes d in both header families.
func setRateLimitHeaders(h http.Header, d ratelimit.Decision) {
	limit := strconv.Itoa(d.Limit)
	remaining := strconv.Itoa(max(d.Remaining, 0))
	reset := strconv.FormatInt(ceilSeconds(d.Reset, 0), 10)
	h.Set(headerRateLimitLimit, limit)
	h.Set(headerRateLimitRemaining, remaining)
	h.Set(headerRateLimitReset, reset)
	h.Set(headerXRateLimitLimit, limit)
	h.Set(headerXRateLimitRemaining, remaining)
	h.Set(headerXRateLimitReset, reset)
}

// ceilSeconds rounds d up to whole seconds, at least floor: headers carry
// integers, and rounding down would send clients back too early.
func ceilSeconds(d time.Duration, floor int64) int64 {
	return max(int64(math.Ceil(d.Seconds())), floor)
}

// byIP keys a request by its client's address.
func (rl *rateLimits) byIP(c echo.Context) (string, bool) {
	ip := rl.clientIP(c.Request())
	return ip, ip != ""
}

// byPrincipal keys a request by the user authentication verified;
// anonymous requests are not limited per user (their routes are limited
// per IP instead).
func byPrincipal(c echo.Context) (string, bool) {
	p, ok := identityPrincipal(c.Request().Context())
	if !ok || p.UserID == uuid.Nil {
		return "", false
	}
	return p.UserID.String(), true
}

// byPrincipalAndParam keys a request by its verified user and one path
// parameter, so that each of a user's connections has its own bucket.
func byPrincipalAndParam(name string) keyFunc {
	return func(c echo.Context) (string, bool) {
		user, ok := byPrincipal(c)
		if !ok {
			return "", false
		}
		return user + "/" + c.Param(name), true
	}
}

// clientAddrFunc returns how to find a request's client address: the socket
// peer, or with trusted proxies the right-most X-Forwarded-For entry that is
// not one of them. Echo's defaults also trust every private and loopback
// address; those are turned off, so only the configured ranges count.
func clientAddrFunc(trusted []netip.Prefix) func(*http.Request) string {
	extract := echo.ExtractIPDirect()
	if len(trusted) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, p := range trusted {
			opts = append(opts, echo.TrustIPRange(&net.IPNet{
				IP:   net.IP(p.Masked().Addr().AsSlice()),
				Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
			}))
		}
		extract = echo.ExtractIPFromXFFHeader(opts...)
	}
	return extract
}

// bucketIP widens an IPv6 address to its /64: one subscriber usually holds
// a whole /64, and per-address buckets would give them 2^64 of them.
func bucketIP(s string) string {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}
