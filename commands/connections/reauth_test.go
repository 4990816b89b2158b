package connections_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/authtoken"
	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/mail"
	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/adapters/password"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/eventstore"
)

// mailWorld is a world with one working instance that also runs the
// identity mailer into a file outbox, and a registered user.
type mailWorld struct {
	*world
	in     *instance
	outbox string
	user   commands.Principal
	email  string
}

// newMailWorld starts a mailWorld: the identity handler shares the
// instance's database and clock, and its SendUserMail works the
// commands.UserMail jobs the connections enqueue.
func newMailWorld(t *testing.T) *mailWorld {
	t.Helper()
	w := newWorld(t, schwabtest.Options{})
	m := &mailWorld{world: w, outbox: filepath.Join(t.TempDir(), "mail"), email: "owner@example.com"}
	var id *identity.Handler
	m.in = w.newInstance(instanceOptions{work: true, register: func(workers *jobs.Workers, client *jobs.Client) {
		id = newIdentity(t, w, client, m.outbox)
		jobs.Handle(workers, id.SendLinkMail)
		jobs.Handle(workers, id.RunAddressRequest)
		jobs.Handle(workers, id.SendUserMail)
	}})
	v, err := id.Register(context.Background(), identity.RegisterInput{Email: m.email, Password: "a long and unusual passphrase", RequestContext: rc})
	require.NoError(t, err)
	m.user = principal(v.ID)
	return m
}

// newIdentity is an identity handler on w's database and clock that
// mails into outbox.
func newIdentity(t *testing.T, w *world, j commands.Jobs, outbox string) *identity.Handler {
	t.Helper()
	pool := testdbPool(t, w.dbURL)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(pool, reg, eventstore.WithClock(w.clock.Now))
	require.NoError(t, err)
	hasher, err := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	require.NoError(t, err)
	jwt, err := authtoken.NewJWT(authtoken.JWTConfig{Secret: []byte("0123456789abcdef0123456789abcdef"), Issuer: "http://dashtam.test", Now: w.clock.Now})
	require.NoError(t, err)
	keyring, err := vault.Parse(oldKey)
	require.NoError(t, err)
	mailer, err := mail.New("file://" + outbox)
	require.NoError(t, err)
	h, err := identity.NewHandler(identity.Deps{
		Store: store, Pool: pool, Hasher: hasher, Policy: password.Policy{}, Access: jwt, Secrets: authtoken.Opaque{},
		Mailer: mailer, Jobs: j, Vault: keyring, Now: w.clock.Now, PublicURL: "http://dashtam.test", Logger: slog.New(slog.DiscardHandler),
		NameKey: []byte("a test key for login-name digests, 32+ bytes"),
	})
	require.NoError(t, err)
	return h
}

// mailsWith returns the text of the outbox's mails to the world's user
// whose subject contains subject.
func (m *mailWorld) mailsWith(subject string) []string {
	m.tb.Helper()
	var out []string
	for _, p := range mailtest.ReadOutbox(m.tb, m.outbox) {
		if strings.Contains(p.To, m.email) && strings.Contains(p.Subject, subject) {
			out = append(out, p.Text)
		}
	}
	return out
}

// TestRefreshTokenEndOfLife: seven days after the code exchange Schwab's
// refresh token is dead. The refresh job, due then, calls nobody: the
// connection needs the user (needs_reauth, with the reason), the job ends,
// and the owner gets a mail saying so.
func TestRefreshTokenEndOfLife(t *testing.T) {
	m := newMailWorld(t)
	in := m.in
	ctx := context.Background()
	id := in.connect(m.user, "Retirement")
	job := in.jobsOf("connection_refresh", id)[0]

	m.clock.Advance(schwabtest.RefreshTokenLifetime)
	_, err := in.jobs.River().JobRetry(ctx, job.ID)
	require.NoError(t, err)
	in.await(river.EventKindJobCancelled, jobID(job.ID))
	require.Equal(t, 1, m.fake.Calls(schwabtest.EndpointToken), "a dead refresh token is not sent")
	v, err := in.h.Get(ctx, m.user, id)
	require.NoError(t, err)
	require.Equal(t, connection.StatusNeedsReauth, v.Status)
	require.Equal(t, connection.FailedRefreshTokenExpired, in.lastEvent(id).(connection.ProviderReauthenticationRequired).Reason)

	in.await(river.EventKindJobCompleted, jobKind("user_mail"))
	mails := m.mailsWith("Your Charles Schwab connection needs your attention")
	require.Len(t, mails, 1)
	require.Contains(t, mails[0], `"Retirement"`)
}

// TestRefreshTokenRefused: Schwab refuses the refresh token (revoked at
// Schwab). The refresh is recorded as failed for good, the connection
// needs the user and the owner is mailed.
func TestRefreshTokenRefused(t *testing.T) {
	m := newMailWorld(t)
	in := m.in
	ctx := context.Background()
	id := in.connect(m.user, "Joint")
	job := in.jobsOf("connection_refresh", id)[0]

	m.fake.RevokeRefresh()
	m.clock.Advance(refreshDue)
	_, err := in.jobs.River().JobRetry(ctx, job.ID)
	require.NoError(t, err)
	in.await(river.EventKindJobCancelled, jobID(job.ID))
	require.Equal(t, 2, m.fake.Calls(schwabtest.EndpointToken))
	require.Equal(t, []string{"ProviderTokenRefreshAttempted", "ProviderTokenRefreshFailed", "ProviderReauthenticationRequired"}, in.eventTypes(id)[2:])
	v, err := in.h.Get(ctx, m.user, id)
	require.NoError(t, err)
	require.Equal(t, connection.StatusNeedsReauth, v.Status)
	in.await(river.EventKindJobCompleted, jobKind("user_mail"))
	require.Len(t, m.mailsWith("needs your attention"), 1)
}

// TestReauthorizationReminder: a day before the refresh token's end of
// life the owner is reminded, with the deadline; the reminder job was
// enqueued with the credentials.
func TestReauthorizationReminder(t *testing.T) {
	m := newMailWorld(t)
	in := m.in
	ctx := context.Background()
	connected := m.clock.Now()
	id := in.connect(m.user, "Personal")
	reminders := in.jobsOf("connection_reauthorization_reminder", id)
	require.Len(t, reminders, 1)
	require.WithinDuration(t, connected.Add(schwabtest.RefreshTokenLifetime-24*time.Hour), reminders[0].ScheduledAt, time.Millisecond)

	// Refreshes on the way keep the one reminder: the end of life stays.
	job := in.jobsOf("connection_refresh", id)[0]
	m.clock.Advance(refreshDue)
	_, err := in.jobs.River().JobRetry(ctx, job.ID)
	require.NoError(t, err)
	in.await(river.EventKindJobSnoozed, jobID(job.ID))
	require.Len(t, in.jobsOf("connection_reauthorization_reminder", id), 1)

	m.clock.Advance(schwabtest.RefreshTokenLifetime - 24*time.Hour - refreshDue)
	_, err = in.jobs.River().JobRetry(ctx, reminders[0].ID)
	require.NoError(t, err)
	in.await(river.EventKindJobCompleted, jobID(reminders[0].ID))
	in.await(river.EventKindJobCompleted, jobKind("user_mail"))
	mails := m.mailsWith("Your Charles Schwab connection ends soon")
	require.Len(t, mails, 1)
	require.Contains(t, mails[0], `"Personal"`)
	require.Contains(t, mails[0], connected.Add(schwabtest.RefreshTokenLifetime).UTC().Format("Monday 2 January 2006, 15:04 UTC"))
}
