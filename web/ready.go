package web

import (
	"context"
	"fmt"
	"time"

	"github.com/dashtam/dashtam/web/api"
)

// Readiness reports whether the server's dependencies can serve traffic.
type Readiness interface {
	// CheckDatabase returns an error when the database is unreachable.
	CheckDatabase(ctx context.Context) error
	// ProjectionLags returns, per projector name, how many events it is behind and how old its checkpoint is.
	ProjectionLags(ctx context.Context) ([]ProjectionLag, error)
}

// ProjectionLag is how far one projector trails the event log.
type ProjectionLag struct {
	// Name is the projector's name, as `dashtam projections list` shows it.
	Name string
	// Events is how many committed events the projector has not applied yet.
	Events int64
	// CheckpointAge is how long ago the projector's checkpoint last moved.
	CheckpointAge time.Duration
	// Parked is how many events the projector parked because it could not
	// apply them: its read model lacks them until an operator retries.
	Parked int64
}

// readyCheckTimeout bounds a readiness probe, because an orchestrator's
// probe gives up after a few seconds anyway and a hung check must fail.
const readyCheckTimeout = 3 * time.Second

// readinessPolicy decides when a projector lags too far to serve reads.
type readinessPolicy struct {
	maxEvents int64
	maxAge    time.Duration
}

// checkReadiness runs every readiness check and reports whether all passed
// and whether any warned. Causes are logged, not returned: /ready is public
// and errors may name hosts.
//
// Parked events only warn: the read model lacks a few events, but the parked
// rows live in the database every instance shares, so failing the check
// would take every instance out of rotation at once and turn a gap into an
// outage. The instance stays ready, reports itself degraded, and the
// dashtam_projection_parked_events gauge is what alerts.
func (s *Server) checkReadiness(ctx context.Context) (checks []api.ReadinessCheck, ok, degraded bool) {
	ctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	ok = true
	fail := func(name, detail string, err error) api.ReadinessCheck {
		ok = false
		if err != nil {
			s.log.WarnContext(ctx, "readiness check failed", "trace_id", TraceID(ctx), "check", name, "error", err.Error())
		}
		return api.ReadinessCheck{Name: name, Status: api.ReadinessCheckStatusFail, Detail: &detail}
	}

	if err := s.readiness.CheckDatabase(ctx); err != nil {
		checks = append(checks, fail("database", "database unreachable", err))
	} else {
		checks = append(checks, api.ReadinessCheck{Name: "database", Status: api.ReadinessCheckStatusOk})
	}

	lags, err := s.readiness.ProjectionLags(ctx)
	if err != nil {
		return append(checks, fail("projections", "projection checkpoints unreadable", err)), false, false
	}
	for _, l := range lags {
		c := api.ReadinessCheck{Name: "projection:" + l.Name, Status: api.ReadinessCheckStatusOk}
		events, age := l.Events, l.CheckpointAge.Seconds()
		c.LagEvents, c.CheckpointAgeSeconds = &events, &age
		if l.Parked > 0 {
			parked := l.Parked
			detail := fmt.Sprintf("%d events parked; see `dashtam projections parked %s`", parked, l.Name)
			c.Status, c.Detail, c.ParkedEvents = api.ReadinessCheckStatusWarn, &detail, &parked
			degraded = true
		}
		if detail := s.readyPolicy.violation(l); detail != "" {
			lagging := fail(c.Name, detail, nil)
			c.Status, c.Detail = lagging.Status, lagging.Detail
		}
		checks = append(checks, c)
	}
	return checks, ok, degraded
}

// violation explains why l makes the server unready, or returns "". An idle
// projector has an old checkpoint but nothing to do, so age counts only
// while events are waiting.
func (p readinessPolicy) violation(l ProjectionLag) string {
	if l.Events > p.maxEvents {
		return fmt.Sprintf("%d events behind (max %d)", l.Events, p.maxEvents)
	}
	if l.Events > 0 && p.maxAge > 0 && l.CheckpointAge > p.maxAge {
		return fmt.Sprintf("checkpoint stuck for %s with %d events waiting (max %s)",
			l.CheckpointAge.Round(time.Second), l.Events, p.maxAge)
	}
	return ""
}
