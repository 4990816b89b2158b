package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Defaults for the Deps fields that may be left zero.
const (
	// DefaultRefreshTTL is the refresh-token (and session) lifetime (docs/identity.md).
	DefaultRefreshTTL = 30 * 24 * time.Hour
	// DefaultAccessTTL is the access-token lifetime SecurityConfig reports
	// when Deps.AccessTTL is zero; it matches the access-token adapter's default.
	DefaultAccessTTL = 15 * time.Minute
)

// Deps are the collaborators of a Handler; every interface and the clock
// are required, so a wiring mistake fails at start-up rather than on the
// first login.
type Deps struct {
	// Store appends to and reads the users' streams.
	Store *eventstore.Store
	// Pool holds the security tables written in the same transaction as the events.
	Pool *pgxpool.Pool
	// Hasher hashes and verifies passwords.
	Hasher commands.PasswordHasher
	// Policy decides whether a new password may be chosen.
	Policy commands.PasswordPolicy
	// Access mints and verifies access JWTs.
	Access commands.AccessTokens
	// Secrets mints refresh, verification and reset tokens and their digests.
	Secrets commands.SecretTokens
	// Mailer sends verification and reset links.
	Mailer commands.Mailer
	// Jobs enqueues every mail, and the public requests decided after the
	// answer, in the transaction that calls for them.
	Jobs commands.Jobs
	// Vault seals what job arguments must not hold in clear (link tokens,
	// addresses typed into public forms).
	Vault commands.Vault
	// Now is the clock every decision is stamped with.
	Now func() time.Time
	// PublicURL is the base of the links in mails, e.g. http://127.0.0.1:8080.
	PublicURL string
	// SessionLimit is the most sessions a user may hold; zero means user.DefaultSessionLimit.
	SessionLimit int
	// RefreshTTL is the refresh-token lifetime; zero means DefaultRefreshTTL.
	RefreshTTL time.Duration
	// AccessTTL is the access-token lifetime Access uses, reported by SecurityConfig; zero means DefaultAccessTTL.
	AccessTTL time.Duration
	// RotationGrace is how long tokens issued just before a token rotation stay accepted.
	RotationGrace time.Duration
	// Heartbeat is how often RunSessionCache proves it still hears invalidations; zero means DefaultHeartbeat.
	Heartbeat time.Duration
	// Logger receives refusals and failures; never secrets, links or emails.
	Logger *slog.Logger
	// NameKey keys the digest under which failed logins to addresses that
	// belong to nobody are counted (table login_throttle), so the table
	// cannot be turned back into addresses by hashing guesses; at least 32 bytes.
	NameKey []byte
	// Keys destroys a user's data key at their erasure; without it erasure
	// answers ErrErasureUnavailable.
	Keys commands.PersonalDataKeys
	// Connections, when set, lets an erasure disconnect the user's connections.
	Connections Connections
}

// Handler implements Service over the event store and the security tables
// of migration 00004.
type Handler struct {
	store        *eventstore.Store
	pool         *pgxpool.Pool
	hasher       commands.PasswordHasher
	policy       commands.PasswordPolicy
	access       commands.AccessTokens
	secrets      commands.SecretTokens
	mailer       commands.Mailer
	now          func() time.Time
	publicURL    string
	sessionLimit int
	refreshTTL   time.Duration
	accessTTL    time.Duration
	grace        time.Duration
	log          *slog.Logger
	nameKey      []byte
	jobs         commands.Jobs
	vault        commands.Vault
	keys         commands.PersonalDataKeys
	connections  Connections

	// users is the generic load → decide → append path of user streams.
	users *eventstore.Repository[*user.User, user.Event]

	cache             *sessionCache // used only while RunSessionCache hears invalidations
	heartbeatInterval time.Duration
}

var _ Service = (*Handler)(nil)

// NewHandler returns a Handler over d, refusing missing dependencies and
// negative durations.
func NewHandler(d Deps) (*Handler, error) {
	var missing []string
	for name, isNil := range map[string]bool{
		"Store": d.Store == nil, "Pool": d.Pool == nil, "Hasher": d.Hasher == nil,
		"Policy": d.Policy == nil, "Access": d.Access == nil, "Secrets": d.Secrets == nil,
		"Mailer": d.Mailer == nil, "Now": d.Now == nil, "Logger": d.Logger == nil,
		"Jobs": d.Jobs == nil, "Vault": d.Vault == nil,
	} {
		if isNil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("new identity handler: missing " + strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	if d.PublicURL == "" {
		return nil, errors.New("new identity handler: missing PublicURL")
	}
	if len(d.NameKey) < 32 {
		return nil, errors.New("new identity handler: NameKey must be at least 32 bytes")
	}
	if d.SessionLimit < 0 || d.RefreshTTL < 0 || d.AccessTTL < 0 || d.RotationGrace < 0 || d.Heartbeat < 0 {
		return nil, errors.New("new identity handler: negative session limit or duration")
	}
	h := &Handler{
		store: d.Store, pool: d.Pool, hasher: d.Hasher, policy: d.Policy, access: d.Access,
		secrets: d.Secrets, mailer: d.Mailer, now: d.Now, jobs: d.Jobs, vault: d.Vault,
		publicURL:    strings.TrimRight(d.PublicURL, "/"),
		sessionLimit: d.SessionLimit, refreshTTL: d.RefreshTTL, accessTTL: d.AccessTTL,
		grace: d.RotationGrace, log: d.Logger, nameKey: d.NameKey, keys: d.Keys, connections: d.Connections,
		cache: newSessionCache(), heartbeatInterval: d.Heartbeat,
	}
	users, err := eventstore.NewRepository(d.Store, commands.UserAggregate())
	if err != nil {
		return nil, fmt.Errorf("new identity handler: %w", err)
	}
	users.OnBadSnapshot(func(stream eventstore.Stream, version int64, err error) {
		// The next decision on this user replaces it, being a snapshot
		// interval or more past version 0.
		d.Logger.Warn("unusable snapshot, replaying the stream", "stream", stream.String(), "version", version, "error", err)
	})
	h.users = users
	if h.heartbeatInterval == 0 {
		h.heartbeatInterval = DefaultHeartbeat
	}
	if h.sessionLimit == 0 {
		h.sessionLimit = user.DefaultSessionLimit
	}
	if h.refreshTTL == 0 {
		h.refreshTTL = DefaultRefreshTTL
	}
	if h.accessTTL == 0 {
		h.accessTTL = DefaultAccessTTL
	}
	return h, nil
}

// clock returns the current time in UTC at microsecond precision, the
// precision PostgreSQL keeps, so what is decided and what is stored agree.
func (h *Handler) clock() time.Time { return h.now().UTC().Truncate(time.Microsecond) }

func rolesToStrings(roles []user.Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

func stringsToRoles(s []string) []user.Role {
	out := make([]user.Role, len(s))
	for i, r := range s {
		out[i] = user.Role(r)
	}
	return out
}
