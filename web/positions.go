package web

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/web/api"
)

// Read your writes (docs/data-api.md): a command's answer carries the log
// position its events reached, and a read that names it waits until the
// read models it reads have applied it.

// HeaderPosition is the response header carrying the global log position
// the request's committed appends reached; absent when it appended nothing
// and on the operations the document declares public.
const HeaderPosition = "X-Dashtam-Position"

// ProjectionsExtension is the OpenAPI extension in which a read operation
// names the projections (read models) it reads. Such an operation must
// declare the `min_position` query parameter, and one that declares the
// parameter must name its projections, so that the wait is never
// forgotten nor waits on the wrong read model.
const ProjectionsExtension = "x-dashtam-projections"

// minPositionParam is the query parameter a read waits on.
const minPositionParam = "min_position"

// PositionWaiter waits until read models applied the event at a global log
// position; projections.Positions implements it.
type PositionWaiter interface {
	// WaitApplied returns nil once every projection in names has applied
	// the event at global position pos, or projections.ErrPositionNotReached
	// when that did not happen within its bounded wait.
	WaitApplied(ctx context.Context, names []string, pos int64) error
}

// useReadModels takes the data routes' reader, the position waiter and
// the cursor key from opts, and reads which projections each operation of
// doc reads.
func (s *Server) useReadModels(opts Options, doc *openapi3.T) error {
	projections, err := newOperationProjections(doc)
	if err != nil {
		return err
	}
	cursors, err := newCursorCodec(opts.CursorKey)
	if err != nil {
		return fmt.Errorf("cursor key: %w", err)
	}
	s.data, s.positions, s.projections, s.cursors = opts.Data, opts.Positions, projections, cursors
	return nil
}

// operationProjections maps "METHOD echo-path" to the projections the
// operation reads.
type operationProjections map[string][]string

// newOperationProjections reads ProjectionsExtension from every operation
// of doc and refuses an operation whose extension and min_position
// parameter disagree.
func newOperationProjections(doc *openapi3.T) (operationProjections, error) {
	out := operationProjections{}
	var problems []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			names, err := declaredProjections(op)
			if err == nil {
				hasParam := hasQueryParam(item.Parameters, minPositionParam) || hasQueryParam(op.Parameters, minPositionParam)
				switch {
				case len(names) > 0 && !hasParam:
					err = fmt.Errorf("names %s but has no %s parameter", ProjectionsExtension, minPositionParam)
				case len(names) == 0 && hasParam:
					err = fmt.Errorf("has a %s parameter but names no %s", minPositionParam, ProjectionsExtension)
				}
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", method, path, err))
				continue
			}
			if len(names) > 0 {
				out[method+" "+echoPath(path)] = names
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("operation projections: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

// declaredProjections returns the names op declares, none when it has no
// extension.
func declaredProjections(op *openapi3.Operation) ([]string, error) {
	raw, ok := op.Extensions[ProjectionsExtension]
	if !ok {
		return nil, nil
	}
	var names []string
	switch v := raw.(type) {
	case json.RawMessage:
		if err := json.Unmarshal(v, &names); err != nil {
			return nil, fmt.Errorf("%s is not a list of names", ProjectionsExtension)
		}
	case []any:
		for _, n := range v {
			s, ok := n.(string)
			if !ok {
				return nil, fmt.Errorf("%s is not a list of names", ProjectionsExtension)
			}
			names = append(names, s)
		}
	default:
		return nil, fmt.Errorf("%s is not a list of names", ProjectionsExtension)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s is empty", ProjectionsExtension)
	}
	return names, nil
}

func hasQueryParam(ps openapi3.Parameters, name string) bool {
	for _, p := range ps {
		if p.Value != nil && p.Value.In == openapi3.ParameterInQuery && p.Value.Name == name {
			return true
		}
	}
	return false
}

// acceptKey keys the request's Accept header in its context, for the
// handlers that answer another media type on request (CSV).
type acceptKey struct{}

// acceptOf returns the Accept header of the request ctx belongs to.
func acceptOf(ctx context.Context) string {
	a, _ := ctx.Value(acceptKey{}).(string)
	return a
}

// readYourWrites gives every request a place where its committed appends
// note the position they reached (sent as X-Dashtam-Position just before
// the response header is written, errors included, except on public
// operations), and makes a read that names min_position wait, bounded,
// until the projections its operation declares have applied that
// position; a position not reached in time is a 503 with Retry-After. It
// runs after validation, so min_position is a positive integer here.
func (s *Server) readYourWrites(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx, reached := eventstore.WithReached(r.Context())
		ctx = context.WithValue(ctx, acceptKey{}, r.Header.Get(echo.HeaderAccept))
		c.SetRequest(r.WithContext(ctx))
		// A public operation's answer never carries the position: there
		// (registration, login, password reset) whether anything was
		// recorded would tell a registered address from an unknown one.
		if perm, inSpec := s.permissions[r.Method+" "+c.Path()]; !inSpec || perm != "" {
			res := c.Response()
			res.Before(func() {
				if pos := reached.Position(); pos > 0 {
					res.Header().Set(HeaderPosition, strconv.FormatInt(pos, 10))
				}
			})
		}
		names := s.projections[r.Method+" "+c.Path()]
		raw := r.URL.Query().Get(minPositionParam)
		if len(names) == 0 || raw == "" {
			return next(c)
		}
		pos, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || pos < 1 {
			return &Error{Code: CodeInvalid, Detail: "the request does not match the API contract",
				Fields: []FieldError{{Field: minPositionParam, Message: "must be a positive integer"}}}
		}
		if s.positions == nil {
			return errDataOff
		}
		if err := s.positions.WaitApplied(ctx, names, pos); err != nil {
			return err
		}
		return next(c)
	}
}

// PositionOf returns the position the request's committed appends reached
// so far (0: none), for handlers that also put it in their body: call it
// after the command returned.
func PositionOf(ctx context.Context) int64 {
	return eventstore.ReachedFrom(ctx).Position()
}

// answeredPosition is PositionOf for a command's body: nil (left out) when
// the request appended nothing or has no authenticated caller (a public
// operation, where the header is left out too).
func answeredPosition(ctx context.Context) *api.Position {
	if _, authenticated := identityPrincipal(ctx); !authenticated {
		return nil
	}
	if pos := PositionOf(ctx); pos > 0 {
		return &pos
	}
	return nil
}
