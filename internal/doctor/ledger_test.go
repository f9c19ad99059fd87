package doctor

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
)

// TestLedgerCheck opens real ledgers through dial, as the controller does,
// and never creates one.
func TestLedgerCheck(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "ledger.db")
	led, err := dial.Open(t.Context(), "sqlite://"+existing, nil)
	if err != nil {
		t.Fatal(err)
	}
	led.Close()
	absent := filepath.Join(dir, "new.db")
	tests := []struct {
		name, url    string
		want         Status
		detail       string
		fix          string
		mustNotExist string // a file the check must not create
	}{
		{name: "existing sqlite", url: "sqlite://" + existing, want: OK, detail: "opens and answers; 0 unfinished migration(s)"},
		{name: "sqlite not made yet", url: "sqlite://" + absent, want: OK, detail: "does not exist yet", mustNotExist: absent},
		{name: "sqlite in a directory that is not there", url: "sqlite://" + filepath.Join(dir, "nope", "l.db"), want: Fail, detail: "nor does its directory", fix: "create the directory"},
		{name: "memory", url: "memory://", want: Warn, detail: "keeps nothing across a restart", fix: "sqlite:///path"},
		{name: "not a ledger URL", url: "sqlite://ledger.db", want: Fail, detail: "ambiguous", fix: dial.Forms},
		{name: "postgres that does not answer", url: "postgres://handover@127.0.0.1:1/handover?connect_timeout=2", want: Fail, detail: "opening postgres://handover@127.0.0.1:1/handover", fix: "reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &audit{cfg: Config{LedgerURL: tt.url}, deps: Deps{OpenLedger: func(ctx context.Context, url string) (ledger.Ledger, error) { return dial.Open(ctx, url, nil) }}}
			a.checkLedger(t.Context())
			r := a.rep.Checks[0]
			if r.Status != tt.want || !strings.Contains(r.Detail, tt.detail) || !strings.Contains(r.Fix, tt.fix) {
				t.Errorf("%s %q (fix %q), want %s with %q and fix %q", r.Status, r.Detail, r.Fix, tt.want, tt.detail, tt.fix)
			}
			if tt.mustNotExist != "" {
				if _, err := os.Stat(tt.mustNotExist); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the check created %s", tt.mustNotExist)
				}
			}
		})
	}
}
