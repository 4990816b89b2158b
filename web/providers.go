package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dashtam/dashtam/web/api"
)

// ProviderInfo describes one enabled provider in the public catalog.
type ProviderInfo struct {
	// Slug identifies the provider in URLs and connections, e.g. "schwab".
	Slug string
	// Name is the provider's display name, e.g. "Charles Schwab".
	Name string
	// AuthType says how a connection authenticates: "oauth2", "api_key" or "none".
	AuthType string
}

// Page sizes of list endpoints, fixed by docs/api.md for every list.
const (
	defaultPageSize = 50
	maxPageSize     = 100
)

// providerCatalog is the sorted, validated catalog served by listProviders.
type providerCatalog []api.Provider

// newProviderCatalog sorts providers by slug, the keyset order, and refuses
// duplicates and unknown auth types, which would make pages ambiguous or
// break the documented enum.
func newProviderCatalog(providers []ProviderInfo) (providerCatalog, error) {
	cat := make(providerCatalog, 0, len(providers))
	for _, p := range providers {
		t := api.ProviderAuthType(p.AuthType)
		switch {
		case strings.TrimSpace(p.Slug) == "" || strings.TrimSpace(p.Name) == "":
			return nil, fmt.Errorf("provider %q: slug and name are required", p.Slug)
		case !t.Valid():
			return nil, fmt.Errorf("provider %q: unknown auth type %q", p.Slug, p.AuthType)
		}
		cat = append(cat, api.Provider{Slug: p.Slug, Name: p.Name, AuthType: t})
	}
	sort.Slice(cat, func(i, j int) bool { return cat[i].Slug < cat[j].Slug })
	for i := 1; i < len(cat); i++ {
		if cat[i].Slug == cat[i-1].Slug {
			return nil, fmt.Errorf("provider %q listed twice", cat[i].Slug)
		}
	}
	return cat, nil
}

// page returns up to limit providers after the cursor's slug, and the
// cursor of the next page when one exists.
func (cat providerCatalog) page(limit int, cursor string) (api.ProviderList, error) {
	start := 0
	if cursor != "" {
		after, err := decodeCursor(cursor)
		if err != nil {
			return api.ProviderList{}, err
		}
		start, _ = slices.BinarySearchFunc(cat, after, func(p api.Provider, slug string) int {
			return strings.Compare(p.Slug, slug)
		})
		if start < len(cat) && cat[start].Slug == after {
			start++
		}
	}
	end := min(start+limit, len(cat))
	list := api.ProviderList{Items: slices.Clone(cat[start:end])}
	if end < len(cat) {
		next := encodeCursor(cat[end-1].Slug)
		list.NextCursor = &next
	}
	return list, nil
}

// encodeCursor makes a keyset position opaque, so clients treat it as a
// token and the encoding can change without breaking them.
func encodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// decodeCursor reverses encodeCursor, answering a field error when the
// client sent something it did not get from us.
func decodeCursor(cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) == 0 {
		return "", &Error{
			Code:   CodeInvalid,
			Detail: "the cursor was not issued by this API",
			Fields: []FieldError{{Field: "cursor", Message: "malformed cursor"}},
		}
	}
	return string(b), nil
}

// ListProviders serves the public provider catalog, one keyset page at a time.
func (h *strictAPI) ListProviders(_ context.Context, req api.ListProvidersRequestObject) (api.ListProvidersResponseObject, error) {
	limit := defaultPageSize
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	if limit < 1 || limit > maxPageSize {
		// The validator rejects this first; kept so the handler is safe alone.
		return nil, &Error{Code: CodeInvalid, Fields: []FieldError{{Field: "limit", Message: "must be between 1 and 100"}}}
	}
	var cursor string
	if req.Params.Cursor != nil {
		cursor = *req.Params.Cursor
	}
	list, err := h.s.providers.page(limit, cursor)
	if err != nil {
		return nil, err
	}
	return api.ListProviders200JSONResponse(list), nil
}
