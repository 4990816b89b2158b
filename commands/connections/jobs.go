package connections

import (
	"time"

	"github.com/google/uuid"
)

// RefreshJob refreshes a connection's tokens ahead of the access token's
// expiry; enqueued unique, so one per connection waits at a time.
type RefreshJob struct {
	ConnectionID uuid.UUID `json:"connection_id"`
}

// Kind names the job's worker.
func (RefreshJob) Kind() string { return "connection_refresh" }

// ExpiryJob fails an authorisation that did not come back by its deadline,
// so an abandoned connection does not stay pending, holding its alias.
type ExpiryJob struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Deadline     time.Time `json:"deadline"`
}

// Kind names the job's worker.
func (ExpiryJob) Kind() string { return "connection_authorization_expiry" }

// ReminderJob mails the owner a day before a connection's refresh token
// reaches its end of life (Schwab's seven days), unless the connection was
// authorised again meanwhile.
type ReminderJob struct {
	ConnectionID     uuid.UUID `json:"connection_id"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

// Kind names the job's worker.
func (ReminderJob) Kind() string { return "connection_reauthorization_reminder" }

// Timing of the refresh and reminder jobs.
const (
	// refreshAt is the share of the access token's life after which the
	// refresh job runs: early enough that a provider outage of a few
	// minutes leaves time for retries before the token dies.
	refreshAt = 0.8
	// reminderAhead is how long before a refresh token's end of life the owner is mailed.
	reminderAhead = 24 * time.Hour
	// refreshLease bounds one refresh's claim on a connection: longer than
	// any provider call (they time out sooner), short enough that a crashed
	// instance's claim soon lapses.
	refreshLease = 2 * time.Minute
	// maxPaceWait is the longest a refresh waits in-process for its slot of
	// the provider's rate; a longer wait snoozes the job instead.
	maxPaceWait = 10 * time.Second
)

// refreshTime is when the refresh of credentials issued at issued and
// expiring at expires should run.
func refreshTime(issued, expires time.Time) time.Time {
	life := expires.Sub(issued)
	if life <= 0 {
		return issued
	}
	return issued.Add(time.Duration(float64(life) * refreshAt))
}
