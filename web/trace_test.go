package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/web"
)

func TestTraceIDFromRequest(t *testing.T) {
	ts := MustServer(t, web.Options{})
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name    string
		headers map[string]string
		want    string // "" means a fresh id
	}{
		{"traceparent", map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7-01"}, id},
		{"traceparent wins", map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7-01", "X-Trace-Id": strings.Repeat("a", 32)}, id},
		{"x-trace-id", map[string]string{"X-Trace-Id": strings.ToUpper(id)}, id},
		{"zero trace id", map[string]string{"traceparent": "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"}, ""},
		{"version ff", map[string]string{"traceparent": "ff-" + id + "-00f067aa0ba902b7-01"}, ""},
		{"injection", map[string]string{"X-Trace-Id": id + "\"}"}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, ts.URL+"/nowhere", nil)
			require.NoError(t, err)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			r := MustDo(t, req)
			p := MustProblem(t, r, http.StatusNotFound, "/nowhere")
			if tt.want != "" {
				assert.Equal(t, tt.want, p.TraceID)
			} else {
				assert.NotEqual(t, id, p.TraceID)
			}
		})
	}
}

func TestAccessLogOmitsSecrets(t *testing.T) {
	ts := MustServer(t, web.Options{})
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/health?code=query-secret", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer header-secret")
	r := MustDo(t, req)
	require.Equal(t, http.StatusOK, r.Status)

	logs := ts.Logs.String()
	assert.NotContains(t, logs, "query-secret")
	assert.NotContains(t, logs, "header-secret")
	assert.Contains(t, logs, `"msg":"http request"`)
	assert.Contains(t, logs, `"trace_id":"`+r.Header.Get(web.HeaderTraceID)+`"`)
	assert.Contains(t, logs, `"method":"GET"`)
	assert.Contains(t, logs, `"path":"/health"`)
	assert.Contains(t, logs, `"status":200`)
	assert.Contains(t, logs, `"duration_ms":`)
}
