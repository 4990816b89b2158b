package web

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// openapiYAML is the API contract; package api is generated from it and
// requests are validated against it, so code and docs cannot drift apart.
//
//go:embed openapi.yaml
var openapiYAML []byte

// loadSpec parses and validates the embedded document and renders it as
// the JSON served at /openapi.json.
func loadSpec(ctx context.Context) (*openapi3.T, []byte, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(openapiYAML)
	if err != nil {
		return nil, nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, nil, fmt.Errorf("validate openapi.yaml: %w", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("render openapi.json: %w", err)
	}
	return doc, js, nil
}

// echoPath converts an OpenAPI path template ("/accounts/{id}") to Echo's
// syntax ("/accounts/:id"), which is what c.Path() reports at runtime.
func echoPath(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		j := strings.IndexByte(p, '}')
		if i < 0 || j < i {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		b.WriteByte(':')
		b.WriteString(p[i+1 : j])
		p = p[j+1:]
	}
}
