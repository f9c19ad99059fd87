// Command releaseweb is the example service of handover's releases (S4,
// docs/releases.md): a web server that serves the files of the release it
// runs from its release mount, and says which release that is.
//
//	GET /release   {"channel":…,"release":…,"manifest_hash":…}: the release
//	               it has taken up, from its marker
//	GET /healthz   200 while the release is readable and carries no file
//	               named UNHEALTHY (a release that fails on purpose)
//	GET /…         the release's files
//
// It reads the release directory from $HANDOVER_RELEASE_DIR (set by
// `handover agent --release-mount`) or --release-dir, and listens on
// $HANDOVER_PRIVATE_IP:8080 on the local cloud, or --listen.
//
// It takes up a release when it starts and on SIGHUP (a reload): it
// resolves the release link then, and serves from what the link pointed
// at, so a flip of the link changes nothing until the service is told,
// and GET /release says what it really serves, not what the link says.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// marker is the part of handover's release marker the service reads.
type marker struct {
	Channel      string `json:"channel"`
	Name         string `json:"name"`
	ManifestHash string `json:"manifest_hash"`
}

func readMarker(dir string) (marker, error) {
	// Through the link each time: a flipped link serves the new release.
	b, err := os.ReadFile(filepath.Join(dir, ".handover-release.json"))
	if err != nil {
		return marker{}, err
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return marker{}, fmt.Errorf("parsing the release marker: %w", err)
	}
	return m, nil
}

// loaded is the release the service has taken up.
type loaded struct {
	dir string // the release link resolved
	m   marker
}

func load(link string) (*loaded, error) {
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil, err
	}
	m, err := readMarker(dir)
	if err != nil {
		return nil, err
	}
	return &loaded{dir: dir, m: m}, nil
}

// server serves the release it has taken up.
type server struct {
	link string
	cur  atomic.Pointer[loaded]
}

// reload takes up what the release link points at now.
func (s *server) reload() (*loaded, error) {
	l, err := load(s.link)
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	return l, nil
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /release", func(w http.ResponseWriter, r *http.Request) {
		m := s.cur.Load().m
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"channel": m.Channel, "release": m.Name, "manifest_hash": m.ManifestHash})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		l := s.cur.Load()
		if _, err := readMarker(l.dir); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		// A release can declare itself broken, for trying out rollbacks.
		if _, err := os.Stat(filepath.Join(l.dir, "UNHEALTHY")); err == nil {
			http.Error(w, "this release carries UNHEALTHY", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		// The marker is the release's business, not a page.
		if r.URL.Path == "/.handover-release.json" {
			http.NotFound(w, r)
			return
		}
		http.FileServer(http.Dir(s.cur.Load().dir)).ServeHTTP(w, r)
	})
	return mux
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "releaseweb:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := "127.0.0.1:8080"
	if ip := os.Getenv("HANDOVER_PRIVATE_IP"); ip != "" {
		listen = net.JoinHostPort(ip, "8080")
	}
	flag.StringVar(&listen, "listen", listen, "address to serve on")
	dir := flag.String("release-dir", os.Getenv("HANDOVER_RELEASE_DIR"), "the release directory (default $HANDOVER_RELEASE_DIR)")
	flag.Parse()
	if *dir == "" {
		return errors.New("no release directory: run under `handover agent --release-mount DIR`, or give --release-dir")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	first, err := load(*dir)
	if err != nil {
		return fmt.Errorf("reading the release in %s: %w", *dir, err)
	}
	srvState := &server{link: *dir}
	srvState.cur.Store(first)
	log.Info("serving release", "channel", first.m.Channel, "release", first.m.Name, "dir", first.dir)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: srvState.handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			l, err := srvState.reload()
			if err != nil {
				log.Error("reload failed; still serving the release it had", "release", srvState.cur.Load().m.Name, "err", err)
				continue
			}
			log.Info("reloaded", "release", l.m.Name, "dir", l.dir)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
