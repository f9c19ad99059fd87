// Package dashboard is the controller's web dashboard: a page of plain ES
// modules, CSS and inline SVG, embedded in the binary (no build step, no
// CDN: the controller may run where there is no internet).
//
// The page holds no data. Everything it shows it reads from the public /v1
// API with the bearer token the user types in, so the assets are served
// without a token and the API keeps the only lock; a page must never call
// an endpoint that is not part of /v1.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// PathAssets is where the page's scripts and styles are served.
const PathAssets = "/ui/"

// Public reports whether path is part of the dashboard's static assets,
// which are served without the API token: they carry no data, and a
// browser cannot send a bearer token when it loads a page.
func Public(path string) bool {
	return path == "/" || strings.HasPrefix(path, PathAssets)
}

// csp keeps the page to its own origin: no inline script, no remote
// anything. Styles set from script through the CSSOM are allowed by
// 'self' (only style attributes in markup would not be).
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Register adds the dashboard's routes to mux: the page at "/" (only "/",
// so unknown paths still answer 404) and its assets under /ui/.
func Register(mux *http.ServeMux) {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	mux.Handle("GET /{$}", headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})))
	mux.Handle("GET "+PathAssets, headers(http.StripPrefix(strings.TrimSuffix(PathAssets, "/"), files)))
}

func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The assets are small and change with the binary: always revalidate.
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
