package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// received is one message as the test SMTP server saw it.
type received struct {
	AuthUser, AuthPass string
	From               string
	To                 []string
	Data               []byte
	TLS                bool
}

// smtpServer is a real SMTP server (emersion/go-smtp) on 127.0.0.1 that
// offers only AUTH PLAIN, refuses mail from unauthenticated sessions and
// records what it accepts.
type smtpServer struct {
	Addr string

	user, pass string
	mu         sync.Mutex
	msgs       []received
	authFails  int
}

type serverConfig struct {
	tlsConfig   *tls.Config // offered via STARTTLS unless implicit
	implicitTLS bool
}

// MustStartSMTPServer starts the server and stops it when the test ends.
func MustStartSMTPServer(tb testing.TB, user, pass string, cfg serverConfig) *smtpServer {
	tb.Helper()
	srv := &smtpServer{user: user, pass: pass}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: srv, conn: c}, nil
	}))
	s.Domain = "localhost"
	// The plaintext tests have no TLS to protect the password; go-smtp would
	// otherwise refuse AUTH before STARTTLS.
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)

	var l net.Listener
	var err error
	if cfg.implicitTLS {
		l, err = tls.Listen("tcp", "127.0.0.1:0", cfg.tlsConfig)
	} else {
		s.TLSConfig = cfg.tlsConfig
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	srv.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	tb.Cleanup(func() {
		_ = s.Close()
		// Close only knows listeners Serve has registered; if the test ends
		// before Serve got that far, closing l is what stops it.
		_ = l.Close()
		<-done
	})
	return srv
}

// Messages returns what the server accepted so far. Send returns only after
// the server answered DATA, which it does after recording, so no waiting is
// needed.
func (s *smtpServer) Messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// AuthFailures counts rejected AUTH attempts.
func (s *smtpServer) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFails
}

type session struct {
	srv                *smtpServer
	conn               *smtp.Conn
	authUser, authPass string
	authed             bool
	cur                received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.srv.user || password != s.srv.pass {
			s.srv.mu.Lock()
			s.srv.authFails++
			s.srv.mu.Unlock()
			return smtp.ErrAuthFailed
		}
		s.authed, s.authUser, s.authPass = true, username, password
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur = received{AuthUser: s.authUser, AuthPass: s.authPass, From: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

// MustSelfSignedTLS returns a server certificate for 127.0.0.1 and a client
// configuration that trusts it and nothing else.
func MustSelfSignedTLS(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dashtam test smtp"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}

// silentListener accepts TCP connections and never speaks, like a relay that
// hangs; each accepted connection is announced on Accepted.
func silentListener(tb testing.TB) (addr string, accepted <-chan struct{}) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			ch <- struct{}{}
		}
	}()
	tb.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String(), ch
}
