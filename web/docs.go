package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"

	"github.com/labstack/echo/v4"
	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5/static"
	"github.com/swaggest/swgui/v5emb"

	"github.com/dashtam/dashtam/commands/ratelimit"
)

// Documentation routes; the pages fetch the spec from specPath and every
// asset from this server, so they work on an air-gapped network.
const (
	specPath      = "/openapi.json"
	swaggerPath   = "/docs"
	redocPath     = "/redoc"
	redocJSPath   = "/redoc/redoc.standalone.js"
	docsPageTitle = "Dashtam API"
)

// redocJS is ReDoc's standalone bundle; see assets/README.md for its
// version, licence and why it is not 3.x.
//
//go:embed assets/redoc/redoc.standalone.js
var redocJS []byte

// redocLogo is the one place the bundle loads something from another
// origin: the Redocly logo of the sidebar's "API docs by Redocly" link, an
// <img> from a CDN. servedRedocJS renders nothing in its place, so the
// page's Content-Security-Policy can forbid every third-party origin.
const redocLogo = `n.createElement("img",{alt:"redocly logo",onError:()=>t(!1),src:"https://cdn.redoc.ly/redoc/logo-mini.svg"})`

// servedRedocJS is redocJS without the CDN logo; redocPatchErr says why it
// could not be made (a new bundle whose logo reads differently), which
// stops start-up rather than serving a page that breaks its own CSP.
var servedRedocJS, redocPatchErr = withoutRedocLogo(redocJS)

// withoutRedocLogo replaces the logo element, which must occur exactly
// once, with null (React renders nothing), keeping the bundle otherwise
// byte for byte the published one.
func withoutRedocLogo(js []byte) ([]byte, error) {
	if n := bytes.Count(js, []byte(redocLogo)); n != 1 {
		return nil, fmt.Errorf("redoc bundle: the CDN logo occurs %d times, want 1; see web/assets/README.md", n)
	}
	out := bytes.Replace(js, []byte(redocLogo), []byte("null"), 1)
	if bytes.Contains(out, []byte("cdn.redoc.ly")) {
		return nil, errors.New("redoc bundle: still refers to cdn.redoc.ly")
	}
	return out, nil
}

// Content-Security-Policies of the documentation pages: nothing but this
// server, no framing, no plugins, no forms. Both UIs set inline styles
// (React style attributes, styled-components) and show data: images, so
// those stay allowed; Swagger UI's two inline scripts are allowed by hash
// (swaggerCSP computes them from the page it serves), and ReDoc's search
// runs in a worker built from a blob: URL.
const (
	docsCSPBase = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	redocCSP = docsCSPBase + "; script-src 'self'; worker-src blob:"
)

// inlineScript finds the scripts a page carries inline (no src attribute).
var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// swaggerCSP renders the Swagger UI page once and allows exactly its inline
// scripts by their SHA-256, so no other inline script could run.
func swaggerCSP(swagger http.Handler) (string, error) {
	rec := httptest.NewRecorder()
	swagger.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, swaggerPath+"/", nil))
	if rec.Code != http.StatusOK {
		return "", fmt.Errorf("render swagger ui: status %d", rec.Code)
	}
	scripts := inlineScript.FindAllSubmatch(rec.Body.Bytes(), -1)
	if len(scripts) == 0 {
		return "", errors.New("render swagger ui: no inline script to allow; has the page changed?")
	}
	csp := docsCSPBase + "; script-src 'self'"
	for _, m := range scripts {
		sum := sha256.Sum256(m[1])
		csp += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return csp, nil
}

// withDocHeaders sets the headers of a documentation response: its CSP,
// no framing, and no Referer to wherever a link in the docs leads.
func withDocHeaders(csp string, h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hd := c.Response().Header()
		hd.Set(echo.HeaderContentSecurityPolicy, csp)
		hd.Set(echo.HeaderXFrameOptions, "DENY")
		hd.Set(headerReferrerPolicy, "no-referrer")
		return h(c)
	}
}

// redocPage loads the embedded bundle, which renders every <redoc> element
// from its spec-url attribute, so the page needs no inline script.
const redocPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + docsPageTitle + ` - ReDoc</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="` + specPath + `"></redoc>
<script src="` + redocJSPath + `"></script>
</body>
</html>
`

// docsRateLimits declares the per-IP limits of the documentation assets,
// which are served outside the OpenAPI document (the pages themselves are
// operations of it and declare theirs there).
var docsRateLimits = ownRouteRateLimits{
	http.MethodGet + " " + swaggerPath + "/*": ratelimit.PublicReads,
	http.MethodGet + " " + redocJSPath:        ratelimit.PublicReads,
}

// registerDocs mounts the spec and both documentation UIs on e.
func registerDocs(e *echo.Echo, specJSON []byte) error {
	if redocPatchErr != nil {
		return redocPatchErr
	}
	e.GET(specPath, func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, specJSON)
	})

	swaggerUI := v5emb.NewWithConfig(swgui.Config{
		// Swagger UI's defaults hide the schemas; API clients want them.
		SettingsUI: map[string]string{"defaultModelsExpandDepth": "1"},
	})(docsPageTitle, specPath, swaggerPath+"/")
	csp, err := swaggerCSP(swaggerUI)
	if err != nil {
		return err
	}
	swagger := withDocHeaders(csp, echo.WrapHandler(swaggerUI))
	e.GET(swaggerPath, swagger)
	e.GET(swaggerPath+"/*", func(c echo.Context) error {
		// swgui answers unknown files with a plain-text 404; ours is a problem.
		if !swaggerAsset(c.Param("*")) {
			return echo.ErrNotFound
		}
		return swagger(c)
	})

	e.GET(redocPath, withDocHeaders(redocCSP, func(c echo.Context) error {
		return c.HTML(http.StatusOK, redocPage)
	}))
	e.GET(redocJSPath, withDocHeaders(redocCSP, func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=3600")
		return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", servedRedocJS)
	}))
	return nil
}

// swaggerAsset reports whether Swagger UI embeds a file called name (its
// FS stores most files gzipped and serves them decompressed on demand).
func swaggerAsset(name string) bool {
	if name == "" {
		return true // "/docs/" is the index page itself
	}
	for _, n := range []string{name, name + ".gz"} {
		if _, err := fs.Stat(static.FS, n); err == nil {
			return true
		}
	}
	return false
}
