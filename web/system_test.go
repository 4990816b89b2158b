package web_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/web"
)

func TestOpenAPIDocument(t *testing.T) {
	ts := MustServer(t, web.Options{})
	r := MustGet(t, ts.URL+"/openapi.json")
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, r.Header.Get("Content-Type"), "application/json")
	var doc struct {
		OpenAPI    string                     `json:"openapi"`
		Paths      map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas         map[string]json.RawMessage `json:"schemas"`
			SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &doc))
	assert.True(t, strings.HasPrefix(doc.OpenAPI, "3.1"), doc.OpenAPI)
	for _, p := range []string{"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/redoc", "/api/v1/providers"} {
		assert.Contains(t, doc.Paths, p)
	}
	assert.Contains(t, doc.Components.Schemas, "Problem")
	assert.Contains(t, doc.Components.SecuritySchemes, "bearerAuth")
}

func TestReady(t *testing.T) {
	tests := map[string]struct {
		readiness  *fakeReadiness
		wantStatus int
		failing    string
		warning    string // a check that warns, leaving the server ready but degraded
	}{
		"all ok": {
			readiness:  &fakeReadiness{lags: []web.ProjectionLag{{Name: "accounts", Events: 3, CheckpointAge: time.Second}}},
			wantStatus: http.StatusOK,
		},
		"idle projector with old checkpoint": {
			readiness:  &fakeReadiness{lags: []web.ProjectionLag{{Name: "accounts", Events: 0, CheckpointAge: 24 * time.Hour}}},
			wantStatus: http.StatusOK,
		},
		"database down": {
			readiness:  &fakeReadiness{dbErr: errors.New("dial tcp: secret-host")},
			wantStatus: http.StatusServiceUnavailable,
			failing:    "database",
		},
		"projector too far behind": {
			readiness:  &fakeReadiness{lags: []web.ProjectionLag{{Name: "accounts", Events: 11}}},
			wantStatus: http.StatusServiceUnavailable,
			failing:    "projection:accounts",
		},
		"projector stuck": {
			readiness:  &fakeReadiness{lags: []web.ProjectionLag{{Name: "accounts", Events: 1, CheckpointAge: time.Hour}}},
			wantStatus: http.StatusServiceUnavailable,
			failing:    "projection:accounts",
		},
		// Parked events are shared by every instance: degraded, not unready.
		"projector with parked events": {
			readiness:  &fakeReadiness{lags: []web.ProjectionLag{{Name: "accounts", Parked: 2}, {Name: "streams"}}},
			wantStatus: http.StatusOK,
			warning:    "projection:accounts",
		},
		"parked and too far behind": {
			readiness:  &fakeReadiness{lags: []web.ProjectionLag{{Name: "accounts", Events: 11, Parked: 2}}},
			wantStatus: http.StatusServiceUnavailable,
			failing:    "projection:accounts",
		},
		"checkpoints unreadable": {
			readiness:  &fakeReadiness{lagErr: errors.New("relation does not exist")},
			wantStatus: http.StatusServiceUnavailable,
			failing:    "projections",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ts := MustServer(t, web.Options{Readiness: tt.readiness, MaxProjectionLag: 10, MaxCheckpointAge: time.Minute})
			r := MustGet(t, ts.URL+"/ready")
			var checks []check
			if tt.wantStatus == http.StatusOK {
				require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
				var body struct {
					Status string  `json:"status"`
					Checks []check `json:"checks"`
				}
				require.NoError(t, json.Unmarshal(r.Body, &body))
				wantBody := "ready"
				if tt.warning != "" {
					wantBody = "degraded"
				}
				assert.Equal(t, wantBody, body.Status)
				checks = body.Checks
			} else {
				p := MustProblem(t, r, http.StatusServiceUnavailable, "/ready")
				assert.Equal(t, "unavailable", p.Code)
				assert.NotContains(t, string(r.Body), "secret-host")
				checks = p.Checks
			}
			require.NotEmpty(t, checks)
			assert.Equal(t, "database", checks[0].Name)
			for _, c := range checks {
				want := "ok"
				switch c.Name {
				case tt.failing:
					want = "fail"
				case tt.warning:
					want = "warn"
					require.NotNil(t, c.ParkedEvents)
					assert.EqualValues(t, 2, *c.ParkedEvents)
					assert.Contains(t, c.Detail, "2 events parked")
				}
				assert.Equal(t, want, c.Status, "check %s", c.Name)
			}
		})
	}
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := MustServer(t, web.Options{Registry: reg})
	MustGet(t, ts.URL+"/health")
	MustGet(t, ts.URL+"/api/v1/providers?limit=0")
	MustGet(t, ts.URL+"/random/abc123")

	r := MustGet(t, ts.URL+"/metrics")
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, r.Header.Get("Content-Type"), "text/plain")
	body := string(r.Body)
	assert.Contains(t, body, `http_requests_total{method="GET",route="/health",status="200"} 1`)
	assert.Contains(t, body, `http_requests_total{method="GET",route="/api/v1/providers",status="400"} 1`)
	assert.Contains(t, body, `http_requests_total{method="GET",route="unmatched",status="404"} 1`)
	assert.Contains(t, body, `http_request_duration_seconds_count{method="GET",route="/health"} 1`)
	assert.NotContains(t, body, "abc123", "raw paths must not become labels")

	// Other packages register on the same registry and appear on /metrics.
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Name: "projection_lag_events", Help: "test"})
	require.NoError(t, reg.Register(lag))
	assert.Contains(t, string(MustGet(t, ts.URL+"/metrics").Body), "projection_lag_events 0")
}

// assetRef finds src and href attributes, the ways a page loads assets.
var assetRef = regexp.MustCompile(`(?:src|href)\s*=\s*["']([^"']+)["']`)

func TestDocsPagesUseOnlyLocalAssets(t *testing.T) {
	ts := MustServer(t, web.Options{})
	for _, page := range []string{"/docs", "/redoc"} {
		t.Run(page, func(t *testing.T) {
			r := MustGet(t, ts.URL+page)
			require.Equal(t, http.StatusOK, r.Status)
			require.Contains(t, r.Header.Get("Content-Type"), "text/html")
			html := string(r.Body)
			assert.Contains(t, html, "/openapi.json")
			refs := assetRef.FindAllStringSubmatch(html, -1)
			require.NotEmpty(t, refs)
			for _, m := range refs {
				ref := m[1]
				require.True(t, strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//"),
					"%s loads non-local asset %q", page, ref)
				a := MustGet(t, ts.URL+ref)
				assert.Equal(t, http.StatusOK, a.Status, "asset %s", ref)
			}
		})
	}
	p := MustProblem(t, MustGet(t, ts.URL+"/docs/no-such-file.js"), http.StatusNotFound, "/docs/no-such-file.js")
	assert.Equal(t, "not_found", p.Code)
}
