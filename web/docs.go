package web

import (
	_ "embed"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5/static"
	"github.com/swaggest/swgui/v5emb"

	"github.com/dashtam/dashtam/adapters/ratelimit"
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
	e.GET(specPath, func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, specJSON)
	})

	swagger := echo.WrapHandler(v5emb.NewWithConfig(swgui.Config{
		// Swagger UI's defaults hide the schemas; API clients want them.
		SettingsUI: map[string]string{"defaultModelsExpandDepth": "1"},
	})(docsPageTitle, specPath, swaggerPath+"/"))
	e.GET(swaggerPath, swagger)
	e.GET(swaggerPath+"/*", func(c echo.Context) error {
		// swgui answers unknown files with a plain-text 404; ours is a problem.
		if !swaggerAsset(c.Param("*")) {
			return echo.ErrNotFound
		}
		return swagger(c)
	})

	e.GET(redocPath, func(c echo.Context) error {
		return c.HTML(http.StatusOK, redocPage)
	})
	e.GET(redocJSPath, func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=3600")
		return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", redocJS)
	})
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
