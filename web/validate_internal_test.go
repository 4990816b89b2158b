package web

import (
	"context"
	"errors"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"
)

// TestRequestSchemasNeedNoJSONSchema2020 holds newSpecRoutes to its
// premise: requests are validated under OpenAPI 3.0, whose validator
// ignores the JSON Schema 2020 keywords, so no parameter or request body
// may use one (they would pass unchecked). The response and webhook
// schemas may: serve does not validate them.
func TestRequestSchemasNeedNoJSONSchema2020(t *testing.T) {
	doc, _, err := loadSpec(context.Background())
	require.NoError(t, err)
	require.True(t, doc.IsOpenAPI31OrLater(), "the document is 3.1; the premise is about its request schemas")
	errFound := errors.New("a JSON Schema 2020 keyword")
	check := func(where string, ref *openapi3.SchemaRef) {
		if ref == nil {
			return
		}
		err := ref.WalkSubtree(func(path string, s *openapi3.SchemaRef) error {
			v := s.Value
			if v.Const != nil || len(v.PrefixItems) != 0 || v.Contains != nil || len(v.PatternProperties) != 0 ||
				len(v.DependentSchemas) != 0 || v.PropertyNames != nil ||
				v.UnevaluatedItems.Has != nil || v.UnevaluatedItems.Schema != nil ||
				v.UnevaluatedProperties.Has != nil || v.UnevaluatedProperties.Schema != nil ||
				v.If != nil || v.Then != nil || v.Else != nil || len(v.DependentRequired) != 0 ||
				len(v.Defs) != 0 || v.ContentSchema != nil {
				t.Errorf("%s: %s uses %v", where, path, errFound)
				return errFound
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFound) {
			t.Errorf("%s: %v", where, err)
		}
	}
	checked := 0
	for key, route := range newSpecRoutes(doc) {
		require.False(t, route.Spec.IsOpenAPI31OrLater(), "%s is validated as 3.0", key)
		op := route.Operation
		for _, p := range append(append(openapi3.Parameters{}, route.PathItem.Parameters...), op.Parameters...) {
			check(key+" parameter "+p.Value.Name, p.Value.Schema)
			checked++
		}
		if op.RequestBody != nil && op.RequestBody.Value != nil {
			for mt, c := range op.RequestBody.Value.Content {
				check(key+" body "+mt, c.Schema)
				checked++
			}
		}
	}
	require.Greater(t, checked, 50, "every operation's parameters and bodies were looked at")
}
