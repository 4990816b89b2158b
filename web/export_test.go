package web

import (
	"context"
	"encoding/json"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/dashtam/dashtam/commands"
)

// OnShutdown lets tests learn when graceful shutdown has begun, so they can
// release a blocked handler only then, without sleeping.
func (s *Server) OnShutdown(f func()) { s.onShutdown = f }

// WithCaller returns ctx carrying p as the verified caller, as authenticate
// sets it, for stand-ins of routes the OpenAPI document does not have yet.
func WithCaller(ctx context.Context, p commands.Principal) context.Context {
	return context.WithValue(ctx, identityKey{}, p)
}

// NewWithExtraPaths builds a Server whose document is the shipped one plus
// the paths of extraPaths (the body of a YAML `paths:` mapping), served by
// handlers the test registers through opts.Routes: declarations the shipped
// document does not use yet are tested on real requests.
func NewWithExtraPaths(opts Options, extraPaths string) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	doc, _, err := loadSpec(context.Background())
	if err != nil {
		return nil, err
	}
	extra, err := openapi3.NewLoader().LoadFromData([]byte("openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\npaths:\n" + extraPaths))
	if err != nil {
		return nil, err
	}
	for path, item := range extra.Paths.Map() {
		doc.Paths.Set(path, item)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return newServer(opts, doc, js)
}
