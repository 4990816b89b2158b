package authtoken

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
)

// The errors are the commands values, so web maps them without importing
// this package.
var (
	// ErrExpired means a genuine token has passed its expiry; the client should refresh.
	ErrExpired = commands.ErrTokenExpired
	// ErrInvalid means a token is malformed, forged, uses another algorithm or key, or names another issuer or audience.
	ErrInvalid = commands.ErrTokenInvalid
)

const (
	// MinSecretLength is the shortest HMAC key accepted: 256 bits, the
	// output size of SHA-256, below which HS256 is weaker than it claims.
	MinSecretLength = 32
	// DefaultTTL is the access-token lifetime of the issue: short enough
	// that a stolen token is of little use, long enough to spare refreshes.
	DefaultTTL = 15 * time.Minute
	// DefaultLeeway absorbs clock skew between API instances; it is kept
	// small because every second of it extends a token's life.
	DefaultLeeway = 5 * time.Second
	// DefaultAudience names the API as the only intended consumer of access tokens.
	DefaultAudience = "dashtam-api"
)

// algorithm is the only one ever signed or accepted: pinning it closes the
// alg-confusion attacks (alg "none", or an RS256 header with the HMAC secret
// passed off as a public key).
var algorithm = jwt.SigningMethodHS256

// JWTConfig configures a JWT.
type JWTConfig struct {
	// Secret is the HMAC key (DASHTAM_JWT_SECRET); at least MinSecretLength bytes.
	Secret []byte
	// Issuer is written to and required in "iss": the public URL (DASHTAM_PUBLIC_URL).
	Issuer string
	// Audience is written to and required in "aud"; empty means DefaultAudience.
	Audience string
	// TTL is the token lifetime; zero means DefaultTTL.
	TTL time.Duration
	// Leeway is the clock-skew allowance on exp and iat; zero means DefaultLeeway.
	Leeway time.Duration
	// Now is the clock for issuing and verifying; nil means time.Now. Tests inject one.
	Now func() time.Time
}

// JWT issues and verifies access tokens; it is safe for concurrent use and
// implements commands.AccessTokens.
type JWT struct {
	secret   []byte
	issuer   string
	audience string
	ttl      time.Duration
	leeway   time.Duration
	now      func() time.Time
	parser   *jwt.Parser

	// verified holds the claims of tokens whose signature and static
	// claims already checked out, keyed by the exact token: a client
	// sends the same token with every request for its lifetime, and
	// parsing and verifying it each time was a sixth of a data page's
	// server CPU (docs/benchmarks.md). Only the clock-bound claims are
	// checked again on a hit; at verifiedMax entries it starts afresh.
	mu       sync.RWMutex
	verified map[string]commands.AccessClaims
}

// verifiedMax bounds the verified-token cache: more than the tokens
// concurrently in use on one instance, small enough to be no memory concern.
const verifiedMax = 4096

var _ commands.AccessTokens = (*JWT)(nil)

// NewJWT returns a JWT for cfg, refusing a secret shorter than
// MinSecretLength or an empty issuer, since either would make tokens
// forgeable or accepted across deployments.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	if len(cfg.Secret) < MinSecretLength {
		return nil, fmt.Errorf("new jwt: secret is %d bytes, at least %d required", len(cfg.Secret), MinSecretLength)
	}
	if cfg.Issuer == "" {
		return nil, errors.New("new jwt: issuer is empty")
	}
	if cfg.TTL < 0 || cfg.Leeway < 0 {
		return nil, errors.New("new jwt: negative ttl or leeway")
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &JWT{
		// Copied so a caller reusing its buffer cannot change the key.
		secret:   append([]byte(nil), cfg.Secret...),
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		ttl:      cfg.TTL,
		leeway:   cfg.Leeway,
		now:      cfg.Now,
		verified: make(map[string]commands.AccessClaims),
		// One parser, built once: it is read-only after construction and
		// re-creating it per request would show in the per-request budget.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{algorithm.Alg()}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
			// Refuse non-canonical base64, so a token has exactly one
			// spelling and a flipped padding bit is not "the same" token.
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// accessClaims is the wire form: registered claims plus Dashtam's own.
type accessClaims struct {
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
	Version   int64    `json:"ver"`
	jwt.RegisteredClaims
}

// Issue signs an access token for c. IssuedAt and ExpiresAt in c are ignored
// and set from the clock (whole seconds, as JWT NumericDate has them); an
// empty ID is filled with a random UUID. expiresAt is the token's "exp".
func (j *JWT) Issue(c commands.AccessClaims) (string, time.Time, error) {
	iat := j.now().Truncate(time.Second)
	exp := iat.Add(j.ttl)
	id := c.ID
	if id == "" {
		id = uuid.NewString()
	}
	roles := c.Roles
	if roles == nil {
		// "roles": [] rather than null keeps the claim's type fixed for
		// other consumers of the token.
		roles = []string{}
	}
	claims := accessClaims{
		SessionID: c.SessionID.String(),
		Roles:     roles,
		Version:   c.TokenVersion,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    j.issuer,
			Subject:   c.Subject.String(),
			Audience:  jwt.ClaimStrings{j.audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        id,
		},
	}
	token, err := jwt.NewWithClaims(algorithm, claims).SignedString(j.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return token, exp, nil
}

// Verify returns the claims of a token this JWT issued that is still within
// its lifetime. It returns ErrExpired for a genuine token past "exp" (plus
// leeway) and an error wrapping ErrInvalid for everything else: malformed
// input, a signature by another key, an algorithm other than HS256 (including
// "none"), a wrong "iss" or "aud", a missing or ill-formed claim.
func (j *JWT) Verify(token string) (commands.AccessClaims, error) {
	j.mu.RLock()
	c, ok := j.verified[token]
	j.mu.RUnlock()
	if ok {
		// The parser's own clock checks (jwt's validator): expired once
		// now-leeway is not before exp; issued in the future while
		// now+leeway is before iat, which the full parse reports.
		now := j.now()
		if !now.Add(-j.leeway).Before(c.ExpiresAt) {
			return commands.AccessClaims{}, ErrExpired
		}
		if !now.Add(j.leeway).Before(c.IssuedAt) {
			c.Roles = slices.Clone(c.Roles)
			return c, nil
		}
	}
	c, cacheable, err := j.verify(token)
	if err != nil {
		return commands.AccessClaims{}, err
	}
	if !cacheable {
		return c, nil
	}
	j.mu.Lock()
	if len(j.verified) >= verifiedMax {
		clear(j.verified)
	}
	j.verified[token] = c
	j.mu.Unlock()
	c.Roles = slices.Clone(c.Roles)
	return c, nil
}

// verify parses and checks token in full. cacheable is false for a token
// with "nbf" (never issued here), whose clock check a hit would skip.
func (j *JWT) verify(token string) (c commands.AccessClaims, cacheable bool, err error) {
	var claims accessClaims
	if _, err := j.parser.ParseWithClaims(token, &claims, j.key); err != nil {
		return commands.AccessClaims{}, false, classify(err)
	}
	sub, err := uuid.Parse(claims.Subject)
	if err != nil {
		return commands.AccessClaims{}, false, fmt.Errorf("%w: sub is not a uuid", ErrInvalid)
	}
	sid, err := uuid.Parse(claims.SessionID)
	if err != nil {
		return commands.AccessClaims{}, false, fmt.Errorf("%w: sid is not a uuid", ErrInvalid)
	}
	if claims.ID == "" {
		return commands.AccessClaims{}, false, fmt.Errorf("%w: jti is missing", ErrInvalid)
	}
	// exp and iat are present: the parser requires both.
	return commands.AccessClaims{
		Subject:      sub,
		SessionID:    sid,
		Roles:        claims.Roles,
		TokenVersion: claims.Version,
		ID:           claims.ID,
		IssuedAt:     claims.IssuedAt.Time,
		ExpiresAt:    claims.ExpiresAt.Time,
	}, claims.NotBefore == nil, nil
}

// key hands the parser the secret only for HS256; the parser already refused
// other algorithms, and checking the method type as well means a future
// change of options cannot quietly let another key type through.
func (j *JWT) key(t *jwt.Token) (any, error) {
	if t.Method != algorithm {
		return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
	}
	return j.secret, nil
}

// classify maps the library's errors onto ours. A token is only "expired"
// when expiry is the sole fault: the signature already checked out (claims
// are validated after it) and no other claim is wrong, so a client told to
// refresh really holds a token that was once good.
func classify(err error) error {
	if errors.Is(err, jwt.ErrTokenExpired) &&
		!errors.Is(err, jwt.ErrTokenInvalidIssuer) &&
		!errors.Is(err, jwt.ErrTokenInvalidAudience) &&
		!errors.Is(err, jwt.ErrTokenUsedBeforeIssued) &&
		!errors.Is(err, jwt.ErrTokenNotValidYet) &&
		!errors.Is(err, jwt.ErrTokenRequiredClaimMissing) &&
		!errors.Is(err, jwt.ErrTokenSignatureInvalid) &&
		!errors.Is(err, jwt.ErrTokenMalformed) &&
		!errors.Is(err, jwt.ErrTokenUnverifiable) {
		return ErrExpired
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}
