package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// modulePath is the module's import path prefix.
const modulePath = "github.com/dashtam/dashtam"

// layoutRule says what the packages under one folder may import, beyond
// the standard library: the layout of README.md's architecture table,
// enforced so that a shortcut cannot creep in unnoticed.
type layoutRule struct {
	// folder is the package path below the module, with its subpackages.
	folder string
	// allow lists the import path prefixes its non-test code may use
	// outside the standard library; nil means any.
	allow []string
	// deny lists module folders it must not import, checked when allow is nil.
	deny []string
}

var layoutRules = []layoutRule{
	// Aggregates are pure: no I/O, no infrastructure, and no other layer.
	{folder: "aggregates", allow: []string{"github.com/google/uuid", "github.com/shopspring/decimal"}},
	// The store knows PostgreSQL and nothing of the domain above it.
	{folder: "eventstore", allow: []string{"github.com/jackc/pgx/v5", "github.com/google/uuid", "github.com/shopspring/decimal"}},
	// Use cases declare ports; adapters implement them and web calls them.
	{folder: "commands", deny: []string{"adapters", "web", "projections", "cmd"}},
	{folder: "projections", deny: []string{"adapters", "web", "commands", "cmd"}},
	// The HTTP layer reaches infrastructure only through commands' ports.
	{folder: "web", deny: []string{"adapters", "cmd"}},
	{folder: "adapters", deny: []string{"web", "cmd", "projections"}},
	{folder: "migrations", deny: []string{"aggregates", "commands", "projections", "adapters", "web", "cmd", "eventstore"}},
}

// layoutExceptions are imports that break a rule knowingly; none today.
var layoutExceptions = map[string]bool{}

// listedPackage is the part of `go list -json` output the rules need.
type listedPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
}

// TestLayoutImportRules checks every package's imports against layoutRules.
func TestLayoutImportRules(t *testing.T) {
	pkgs := goList(t, modulePath+"/...")
	std := map[string]bool{}
	for _, p := range goList(t, "std") {
		std[p.ImportPath] = true
	}
	checked := 0
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, modulePath), "/")
		for _, r := range layoutRules {
			if rel != r.folder && !strings.HasPrefix(rel, r.folder+"/") {
				continue
			}
			checked++
			for _, imp := range p.Imports {
				if std[imp] || layoutExceptions[p.ImportPath+" "+imp] {
					continue
				}
				if msg := r.violation(imp); msg != "" {
					t.Errorf("%s imports %s: %s", p.ImportPath, imp, msg)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages matched a rule: is the module path right?", checked)
	}
}

// violation explains why folder r may not import imp, or returns "".
func (r layoutRule) violation(imp string) string {
	inModule := strings.HasPrefix(imp, modulePath+"/")
	rel := strings.TrimPrefix(imp, modulePath+"/")
	if r.allow != nil {
		if inModule && (rel == r.folder || strings.HasPrefix(rel, r.folder+"/")) {
			return ""
		}
		for _, a := range r.allow {
			if imp == a || strings.HasPrefix(imp, a+"/") {
				return ""
			}
		}
		return r.folder + " may import only the standard library and " + strings.Join(r.allow, ", ")
	}
	if !inModule {
		return ""
	}
	for _, d := range r.deny {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return r.folder + " must not import " + d
		}
	}
	return ""
}

// goList runs `go list -json pattern` and decodes its stream of packages.
func goList(t *testing.T, pattern string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Standard,Imports", pattern)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
}
