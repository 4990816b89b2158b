package web

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/dashtam/dashtam/aggregates/user"
)

// PermissionExtension is the OpenAPI extension in which every operation
// declares what it requires: PermissionPublic or a user.Permission. It sits
// beside the route in the document, so the contract clients read and the
// rule the server enforces are one and the same line.
const PermissionExtension = "x-dashtam-permission"

// PermissionPublic marks an operation that needs no bearer token.
const PermissionPublic = "public"

// operationPermissions maps "METHOD echo-path" to the permission an
// operation requires ("" for a public one).
type operationPermissions map[string]user.Permission

// newOperationPermissions reads PermissionExtension from every operation
// of doc and refuses a document where one is missing or unknown: an
// undeclared operation would otherwise be open or closed by accident.
func newOperationPermissions(doc *openapi3.T) (operationPermissions, error) {
	perms := operationPermissions{}
	var problems []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			p, err := declaredPermission(op)
			if err == nil {
				err = checkSecurity(doc, op, p)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", method, path, err))
				continue
			}
			perms[method+" "+echoPath(path)] = p
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("operation permissions: %s", strings.Join(problems, "; "))
	}
	return perms, nil
}

// declaredPermission returns the permission op declares, "" for public.
func declaredPermission(op *openapi3.Operation) (user.Permission, error) {
	raw, ok := op.Extensions[PermissionExtension]
	if !ok {
		return "", fmt.Errorf("no %s", PermissionExtension)
	}
	var name string
	switch v := raw.(type) {
	case string:
		name = v
	case json.RawMessage:
		if err := json.Unmarshal(v, &name); err != nil {
			return "", fmt.Errorf("%s is not a string", PermissionExtension)
		}
	default:
		return "", fmt.Errorf("%s is not a string", PermissionExtension)
	}
	if name == PermissionPublic {
		return "", nil
	}
	for _, p := range user.Permissions {
		if string(p) == name {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s %q is neither %q nor a known permission", PermissionExtension, name, PermissionPublic)
}

// checkSecurity refuses an operation whose documented security disagrees
// with its permission: clients and generated SDKs read `security`, the
// server enforces the permission, and the two must tell the same story.
func checkSecurity(doc *openapi3.T, op *openapi3.Operation, p user.Permission) error {
	security := doc.Security
	if op.Security != nil {
		security = *op.Security
	}
	public := p == ""
	switch {
	case public && len(security) > 0:
		return fmt.Errorf("is %s but documents a security requirement; add `security: []`", PermissionPublic)
	case !public && len(security) == 0:
		return fmt.Errorf("needs %s but documents no security requirement", p)
	}
	return nil
}
