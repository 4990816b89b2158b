package web

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
)

// A document whose operations do not all declare a sound permission is
// refused at start-up rather than served open or closed by accident.
func TestOperationPermissionsRefuseUndeclaredOrInconsistent(t *testing.T) {
	const head = `openapi: 3.0.3
info: {title: t, version: "1"}
security: [{bearerAuth: []}]
components: {securitySchemes: {bearerAuth: {type: http, scheme: bearer}}}
paths:
  /x:
    get:
      responses: {"200": {description: ok}}
`
	tests := map[string]string{
		"missing":              "",
		"unknown":              "      x-dashtam-permission: data:delete\n",
		"not a string":         "      x-dashtam-permission: [self]\n",
		"public but secured":   "      x-dashtam-permission: public\n",
		"secured but no token": "      x-dashtam-permission: self\n      security: []\n",
	}
	for name, ext := range tests {
		t.Run(name, func(t *testing.T) {
			doc, err := openapi3.NewLoader().LoadFromData([]byte(head + ext))
			require.NoError(t, err)
			_, err = newOperationPermissions(doc)
			assert.ErrorContains(t, err, "GET /x")
		})
	}

	doc, err := openapi3.NewLoader().LoadFromData([]byte(head + "      x-dashtam-permission: audit:read\n"))
	require.NoError(t, err)
	perms, err := newOperationPermissions(doc)
	require.NoError(t, err)
	assert.Equal(t, operationPermissions{"GET /x": user.PermissionAuditRead}, perms)

	// The shipped document passes, so New can never fail on it.
	shipped, _, err := loadSpec(context.Background())
	require.NoError(t, err)
	_, err = newOperationPermissions(shipped)
	require.NoError(t, err)
}
