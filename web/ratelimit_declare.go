package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/commands/ratelimit"
)

// RateLimitExtension is the OpenAPI extension in which every operation
// declares the rate-limit policies it is charged under, beside
// x-dashtam-permission, so the allowance clients read and the one the
// server enforces are one line of the document. Its value is either a
// policy name of commands/ratelimit, charged per client IP on a public
// operation and per verified user on any other, or a mapping from key to
// a policy name, or to a list of them, for anything else:
//
//	x-dashtam-rate-limit: login
//	x-dashtam-rate-limit: {ip: token_refresh_ip, token_user: token_refresh}
//	x-dashtam-rate-limit: {user: writes, user+id: sync}
//	x-dashtam-rate-limit: {user: [writes, provider_connect]}
//
// Keys: ip (the client address, the only key a public operation has before
// any work), user (the verified caller), user+PARAM (the caller and a path
// parameter) and token_user (the user whose credential a public request
// carries, charged by the identity service once it has looked that up).
const RateLimitExtension = "x-dashtam-rate-limit"

// Rate-limit keys a declaration may use.
const (
	rateKeyIP        = "ip"
	rateKeyUser      = "user"
	rateKeyTokenUser = "token_user"
	// rateKeyUserParam prefixes "user+PARAM" keys.
	rateKeyUserParam = "user+"
)

// rateCharge is one declared charge: a policy under one kind of key.
type rateCharge struct {
	key    string
	policy ratelimit.Policy
}

// rateDeclarations maps "METHOD echo-path" to the charges of a route.
type rateDeclarations map[string][]rateCharge

// newRateDeclarations reads RateLimitExtension from every operation of doc
// and refuses a document in which one is missing, names an unknown policy
// or key, or leaves a public operation without a per-IP charge: a public
// route must never ship unlimited, and its only key before any work is the
// client's address. perms says which operations are public.
func newRateDeclarations(doc *openapi3.T, perms operationPermissions) (rateDeclarations, error) {
	decl := rateDeclarations{}
	var problems []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			route := method + " " + echoPath(path)
			charges, err := declaredRateLimits(op, perms[route] == "", pathParams(item, op))
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", method, path, err))
				continue
			}
			decl[route] = charges
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("operation rate limits: %s", strings.Join(problems, "; "))
	}
	return decl, nil
}

// declaredRateLimits parses one operation's declaration and checks it.
func declaredRateLimits(op *openapi3.Operation, public bool, params map[string]bool) ([]rateCharge, error) {
	raw, ok := op.Extensions[RateLimitExtension]
	if !ok {
		return nil, fmt.Errorf("no %s", RateLimitExtension)
	}
	byKey, err := rateLimitValue(raw)
	if err != nil {
		return nil, err
	}
	if len(byKey) == 0 {
		return nil, fmt.Errorf("%s declares no policy", RateLimitExtension)
	}
	if def, ok := byKey[""]; ok {
		delete(byKey, "")
		key := rateKeyUser
		if public {
			key = rateKeyIP
		}
		byKey[key] = def
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	// Charged in a fixed order, the IP first: it is the one that guards
	// the work done to find the others.
	sort.Slice(keys, func(i, j int) bool {
		return rateKeyRank(keys[i]) < rateKeyRank(keys[j]) || rateKeyRank(keys[i]) == rateKeyRank(keys[j]) && keys[i] < keys[j]
	})
	var (
		charges []rateCharge
		perIP   bool
		perUser bool
	)
	for _, key := range keys {
		for _, name := range byKey[key] {
			p, ok := ratelimit.ByName(name)
			if !ok {
				return nil, fmt.Errorf("%s names unknown policy %q (see commands/ratelimit/policies.go)", RateLimitExtension, name)
			}
			charges = append(charges, rateCharge{key: key, policy: p})
		}
		switch {
		case key == rateKeyIP:
			perIP = true
		case key == rateKeyUser:
			perUser = true
		case strings.HasPrefix(key, rateKeyUserParam):
			if param := strings.TrimPrefix(key, rateKeyUserParam); !params[param] {
				return nil, fmt.Errorf("%s key %q names no path parameter of the operation", RateLimitExtension, key)
			}
			perUser = true
		case key == rateKeyTokenUser:
			if !public {
				return nil, fmt.Errorf("%s key %q is for public operations, whose caller only a credential in the body names", RateLimitExtension, key)
			}
		default:
			return nil, fmt.Errorf("%s key %q is none of ip, user, user+PARAM, token_user", RateLimitExtension, key)
		}
	}
	switch {
	case public && !perIP:
		return nil, fmt.Errorf("is public but has no per-IP (%s) charge in %s", rateKeyIP, RateLimitExtension)
	case public && perUser:
		return nil, fmt.Errorf("is public, so it has no verified user to charge per %s", rateKeyUser)
	case !public && !perUser:
		return nil, fmt.Errorf("needs a token but has no per-user (%s) charge in %s", rateKeyUser, RateLimitExtension)
	}
	return charges, nil
}

// rateKeyRank orders the charges of a route: per IP, per user, per user
// and resource, then after the identity service's lookup.
func rateKeyRank(key string) int {
	switch {
	case key == rateKeyIP:
		return 0
	case key == rateKeyUser:
		return 1
	case strings.HasPrefix(key, rateKeyUserParam):
		return 2
	}
	return 3
}

// rateLimitValue decodes the extension: a policy name (under key "") or
// a mapping from key to a policy name or a non-empty list of them.
func rateLimitValue(raw any) (map[string][]string, error) {
	if m, ok := raw.(json.RawMessage); ok {
		var v any
		if err := json.Unmarshal(m, &v); err != nil {
			return nil, fmt.Errorf("%s is not valid: %w", RateLimitExtension, err)
		}
		raw = v
	}
	switch v := raw.(type) {
	case string:
		return map[string][]string{"": {v}}, nil
	case map[string]any:
		out := make(map[string][]string, len(v))
		for k, p := range v {
			names, ok := policyNames(p)
			if !ok || k == "" {
				return nil, fmt.Errorf("%s maps %q to something other than a policy name or a list of them", RateLimitExtension, k)
			}
			out[k] = names
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is neither a policy name nor a mapping from key to policy name", RateLimitExtension)
}

// pathParams names the path parameters of an operation, those of its path
// item included.
func pathParams(item *openapi3.PathItem, op *openapi3.Operation) map[string]bool {
	out := map[string]bool{}
	for _, params := range []openapi3.Parameters{item.Parameters, op.Parameters} {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInPath {
				out[p.Value.Name] = true
			}
		}
	}
	return out
}

// ownRouteRateLimits declares, per client IP, the policies of the routes
// the server serves outside the OpenAPI document (documentation assets,
// the pages the identity mails link to), which the document cannot carry.
// The keys are "METHOD echo-path".
type ownRouteRateLimits map[string]ratelimit.Policy

// checkRoutes refuses a server whose routes and declarations disagree: an
// operation of the document that no route serves, or a route of the
// server's own, outside the document, with no declared limit. ownRoutes
// are the routes New registers; all adds those of Options.Routes, which
// are the embedder's and may serve operations but are not checked.
func checkRoutes(ownRoutes, all []*echo.Route, decl rateDeclarations, own ownRouteRateLimits) error {
	served := map[string]bool{}
	for _, r := range all {
		served[r.Method+" "+r.Path] = true
	}
	var problems []string
	for _, r := range ownRoutes {
		key := r.Method + " " + r.Path
		if _, ok := decl[key]; ok {
			continue
		}
		if _, ok := own[key]; !ok {
			problems = append(problems, fmt.Sprintf("%s is served outside openapi.yaml without a declared rate limit", key))
		}
	}
	for key := range decl {
		if !served[key] {
			problems = append(problems, fmt.Sprintf("%s is in openapi.yaml but no route serves it", key))
		}
	}
	for key := range own {
		if !served[key] {
			problems = append(problems, fmt.Sprintf("%s has a declared rate limit but no route", key))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("routes: %s", strings.Join(problems, "; "))
	}
	return nil
}

// policyNames reads one key's value: a policy name, or a non-empty list of
// distinct names, each charged under the key.
func policyNames(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		names := make([]string, 0, len(v))
		for _, n := range v {
			name, ok := n.(string)
			if !ok || slices.Contains(names, name) {
				return nil, false
			}
			names = append(names, name)
		}
		return names, len(names) > 0
	}
	return nil, false
}
