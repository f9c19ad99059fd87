package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
)

// checkLedger opens the ledger the way the controller does and reads it
// once. A SQLite file that does not exist yet is not created: the
// controller creates it at its first start.
func (a *audit) checkLedger(ctx context.Context) {
	const check = "ledger"
	t, err := dial.Parse(a.cfg.LedgerURL)
	if err != nil {
		a.add(Result{Check: check, Status: Fail, Detail: err.Error(), Fix: "set --ledger (HANDOVER_LEDGER) to one of: " + dial.Forms})
		return
	}
	if t.Backend == dial.SQLite {
		if _, err := os.Stat(t.Path); errors.Is(err, fs.ErrNotExist) {
			dir := filepath.Dir(t.Path)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				a.add(Result{Check: check, Status: Fail, Detail: fmt.Sprintf("%s does not exist, nor does its directory %s", t, dir),
					Fix: "create the directory on the controller's machine, or correct --ledger"})
				return
			}
			a.add(Result{Check: check, Status: OK, Detail: fmt.Sprintf("%s does not exist yet: the controller creates it at its first start (doctor does not)", t)})
			return
		}
	}
	led, err := a.deps.OpenLedger(ctx, a.cfg.LedgerURL)
	if err != nil {
		a.add(Result{Check: check, Status: Fail, Detail: fmt.Sprintf("opening %s: %v", t, err),
			Fix: "check that the ledger is reachable from here and that these credentials may use it, or correct --ledger (HANDOVER_LEDGER)"})
		return
	}
	defer led.Close()
	ms, err := led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		a.add(Result{Check: check, Status: Fail, Detail: fmt.Sprintf("%s opens but does not answer: %v", t, err),
			Fix: "check the database's health and this account's permissions on it"})
		return
	}
	if t.Backend == dial.Memory {
		a.add(Result{Check: check, Status: Warn, Detail: "memory:// opens, but it keeps nothing across a restart of the controller, and no other process sees it",
			Fix: "use sqlite:///path, postgres://… or dynamodb://TABLE"})
		return
	}
	a.add(Result{Check: check, Status: OK, Detail: fmt.Sprintf("%s opens and answers; %d unfinished migration(s)", t, len(ms))})
}
