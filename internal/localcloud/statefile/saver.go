package statefile

import (
	"log/slog"
	"sync"
	"time"
)

// Saver calls a save function shortly after changes, gathering the changes
// of one delay into one save, and once more when closed. Its methods are
// safe for concurrent use.
type Saver struct {
	delay time.Duration
	save  func() error
	log   *slog.Logger

	dirty     chan struct{}
	closed    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	err       error // written by run, read only after done is closed
}

// NewSaver starts a Saver that calls save at most once per delay while
// changes are being marked. save runs on the Saver's goroutine, never
// concurrently with itself; it must do its own locking. Failed saves are
// logged to logger (nil discards) and retried on the next change or on
// Close.
func NewSaver(delay time.Duration, save func() error, logger *slog.Logger) *Saver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Saver{
		delay:  delay,
		save:   save,
		log:    logger,
		dirty:  make(chan struct{}, 1),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go s.run()
	return s
}

// MarkDirty schedules a save. It never blocks, so it may be called with
// the lock save takes held. After Close it does nothing.
func (s *Saver) MarkDirty() {
	select {
	case s.dirty <- struct{}{}:
	default: // a save is already scheduled
	}
}

// Close stops the Saver, saves once more and returns that save's error.
// It is safe to repeat; later calls return the same error without saving.
func (s *Saver) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	<-s.done
	return s.err
}

func (s *Saver) run() {
	defer close(s.done)
	for {
		select {
		case <-s.closed:
			s.saveNow()
			return
		case <-s.dirty:
		}
		t := time.NewTimer(s.delay)
		select {
		case <-s.closed:
			t.Stop()
			s.saveNow()
			return
		case <-t.C:
		}
		// Changes marked during the delay are in this save; only those
		// marked from now on need another.
		select {
		case <-s.dirty:
		default:
		}
		s.saveNow()
	}
}

func (s *Saver) saveNow() {
	s.err = s.save()
	if s.err != nil {
		s.log.Error("saving state", "error", s.err)
	}
}
