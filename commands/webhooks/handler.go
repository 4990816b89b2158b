package webhooks

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/commands"
)

// DefaultSchedule is the delay before each attempt after the first (which
// is immediate): the Standard Webhooks example schedule, ten attempts over
// about 75 hours, each delay varied by up to a tenth either way so that a
// receiver that failed under load is not hit again all at once.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Defaults of the endpoint policy; each has a field in Deps.
const (
	// DefaultDisableAfter is how long an endpoint may fail every attempt
	// before it is disabled and its owner mailed.
	DefaultDisableAfter = 5 * 24 * time.Hour
	// DefaultRotationOverlap is how long the secret a rotation replaced
	// keeps signing beside the new one.
	DefaultRotationOverlap = 24 * time.Hour
	// maxRetryAfter caps a receiver's Retry-After.
	maxRetryAfter = 24 * time.Hour
)

// Queue is the job queue deliveries run on, apart from the others so a
// slow receiver delays no refresh or mail; adapters/jobs configures it.
const Queue = "webhooks"

// Deps are the collaborators of a Handler. Pool, Vault, Jobs, Sender, URLs,
// Now and Logger are required; the policy fields fall back to the defaults.
type Deps struct {
	// Pool holds the endpoint, delivery and attempt rows.
	Pool *pgxpool.Pool
	// Vault seals the signing secrets, each bound to its endpoint.
	Vault commands.Vault
	// Jobs enqueues deliveries and the owner's mail.
	Jobs commands.Jobs
	// Sender makes the attempts.
	Sender Sender
	// URLs decides which endpoint URLs are acceptable.
	URLs URLPolicy
	// Now stamps attempts and decides retries and disabling.
	Now func() time.Time
	// Logger receives failures; never a secret or a body.
	Logger *slog.Logger

	// Schedule replaces DefaultSchedule (tests use milliseconds).
	Schedule []time.Duration
	// DisableAfter replaces DefaultDisableAfter.
	DisableAfter time.Duration
	// RotationOverlap replaces DefaultRotationOverlap.
	RotationOverlap time.Duration
	// Jitter varies a retry delay; nil means up to a tenth either way.
	Jitter func(time.Duration) time.Duration
}

// Handler implements Service and the delivery job.
type Handler struct {
	pool            *pgxpool.Pool
	vault           commands.Vault
	jobs            commands.Jobs
	sender          Sender
	urls            URLPolicy
	clock           commands.Clock
	log             *slog.Logger
	schedule        []time.Duration
	disableAfter    time.Duration
	rotationOverlap time.Duration
	jitter          func(time.Duration) time.Duration
}

var _ Service = (*Handler)(nil)

// NewHandler returns a Handler over d, refusing missing dependencies.
func NewHandler(d Deps) (*Handler, error) {
	var missing []string
	for name, isNil := range map[string]bool{
		"Pool": d.Pool == nil, "Vault": d.Vault == nil, "Jobs": d.Jobs == nil, "Sender": d.Sender == nil,
		"URLs": d.URLs == nil, "Now": d.Now == nil, "Logger": d.Logger == nil,
	} {
		if isNil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("new webhooks handler: missing " + strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	h := &Handler{
		pool: d.Pool, vault: d.Vault, jobs: d.Jobs, sender: d.Sender, urls: d.URLs, clock: commands.Clock(d.Now), log: d.Logger,
		schedule: d.Schedule, disableAfter: d.DisableAfter, rotationOverlap: d.RotationOverlap, jitter: d.Jitter,
	}
	if h.schedule == nil {
		h.schedule = DefaultSchedule
	}
	if h.disableAfter <= 0 {
		h.disableAfter = DefaultDisableAfter
	}
	if h.rotationOverlap <= 0 {
		h.rotationOverlap = DefaultRotationOverlap
	}
	if h.jitter == nil {
		h.jitter = tenthJitter
	}
	return h, nil
}

// tenthJitter varies d uniformly by up to a tenth either way.
func tenthJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	span := int64(d / 5)
	if span <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(span+1))
}

// MaxAttempts is how many attempts a delivery gets under the schedule.
func (h *Handler) MaxAttempts() int { return len(h.schedule) + 1 }
