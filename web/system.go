package web

import (
	"context"
	"net/http"

	"github.com/dashtam/dashtam/web/api"
)

// strictAPI implements the generated strict server interface; it is a
// separate type so Server's exported method set stays the lifecycle only.
type strictAPI struct {
	s *Server
}

var _ api.StrictServerInterface = (*strictAPI)(nil)

// GetHealth answers liveness: reaching this code proves the process serves.
func (h *strictAPI) GetHealth(context.Context, api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	return api.GetHealth200JSONResponse{Status: api.HealthStatusOk}, nil
}

// GetReady answers readiness with the outcome of every check, so an
// operator sees which dependency holds the instance out of rotation.
func (h *strictAPI) GetReady(ctx context.Context, _ api.GetReadyRequestObject) (api.GetReadyResponseObject, error) {
	checks, ok, degraded := h.s.checkReadiness(ctx)
	switch {
	case ok && degraded:
		return api.GetReady200JSONResponse{Status: api.ReadinessStatusDegraded, Checks: checks}, nil
	case ok:
		return api.GetReady200JSONResponse{Status: api.ReadinessStatusReady, Checks: checks}, nil
	}
	code, detail := string(CodeUnavailable), "a dependency is not ready; see checks"
	return api.GetReady503ApplicationProblemPlusJSONResponse{
		Type:     "about:blank",
		Title:    http.StatusText(http.StatusServiceUnavailable),
		Status:   http.StatusServiceUnavailable,
		Detail:   &detail,
		Code:     &code,
		Instance: requestPath(ctx),
		TraceId:  TraceID(ctx),
		Checks:   checks,
	}, nil
}
