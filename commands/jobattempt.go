package commands

import "context"

// JobAttempt says which try of a job is running, so a handler knows when a
// failure is the last one (and records it) rather than retried.
type JobAttempt struct {
	// Attempt counts from 1; a snooze does not count.
	Attempt int
	// MaxAttempts is the try after which the job is discarded; zero when
	// unknown, in which case no try is the last.
	MaxAttempts int
}

// Last reports whether a failure now ends the job for good.
func (a JobAttempt) Last() bool { return a.MaxAttempts > 0 && a.Attempt >= a.MaxAttempts }

type jobAttemptKey struct{}

// WithJobAttempt returns ctx carrying a, as the job runner sets it for
// every job it runs.
func WithJobAttempt(ctx context.Context, a JobAttempt) context.Context {
	return context.WithValue(ctx, jobAttemptKey{}, a)
}

// JobAttemptFrom returns the attempt ctx carries; outside a job runner
// (a test calling a handler) it reports a first try that is not the last.
func JobAttemptFrom(ctx context.Context) JobAttempt {
	if a, ok := ctx.Value(jobAttemptKey{}).(JobAttempt); ok {
		return a
	}
	return JobAttempt{Attempt: 1}
}
