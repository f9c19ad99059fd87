package statefile

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in synctest bubbles: time is fake, and synctest.Test fails
// if any goroutine the Saver started is still alive when the test ends.

func TestSaver(t *testing.T) {
	const delay = time.Second
	tests := []struct {
		name string
		// act marks changes against the fake clock.
		act       func(s *Saver)
		wantSaves int32 // before Close
	}{
		{name: "no changes", act: func(*Saver) {}, wantSaves: 0},
		{name: "one change", act: func(s *Saver) { s.MarkDirty() }, wantSaves: 1},
		{name: "burst gathered", act: func(s *Saver) {
			for range 100 {
				s.MarkDirty()
			}
		}, wantSaves: 1},
		{name: "changes a delay apart", act: func(s *Saver) {
			s.MarkDirty()
			time.Sleep(2 * delay)
			s.MarkDirty()
		}, wantSaves: 2},
		{name: "change during the delay waits for it", act: func(s *Saver) {
			s.MarkDirty()
			time.Sleep(delay / 2)
			s.MarkDirty() // gathered into the save already scheduled
		}, wantSaves: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var saves atomic.Int32
				s := NewSaver(delay, func() error { saves.Add(1); return nil }, nil)
				tt.act(s)
				time.Sleep(3 * delay)
				synctest.Wait()
				if got := saves.Load(); got != tt.wantSaves {
					t.Errorf("%d saves before Close, want %d", got, tt.wantSaves)
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if got := saves.Load(); got != tt.wantSaves+1 {
					t.Errorf("%d saves after Close, want %d", got, tt.wantSaves+1)
				}
			})
		})
	}
}

func TestSaverCloseBeforeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var saves atomic.Int32
		s := NewSaver(time.Hour, func() error { saves.Add(1); return nil }, nil)
		s.MarkDirty()
		synctest.Wait() // the saver is waiting out the delay
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := saves.Load(); got != 1 {
			t.Errorf("%d saves, want 1 (on Close, without waiting the delay)", got)
		}
	})
}

func TestSaverCloseReturnsLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDisk := errors.New("disk full")
		var fail atomic.Bool
		fail.Store(true)
		s := NewSaver(time.Second, func() error {
			if fail.Load() {
				return errDisk
			}
			return nil
		}, nil)
		if err := s.Close(); !errors.Is(err, errDisk) {
			t.Fatalf("Close = %v, want %v", err, errDisk)
		}
		// Repeating Close neither saves again nor forgets the error.
		fail.Store(false)
		if err := s.Close(); !errors.Is(err, errDisk) {
			t.Fatalf("second Close = %v, want %v", err, errDisk)
		}
		s.MarkDirty() // after Close: must not block
	})
}

func TestSaverFailureThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		s := NewSaver(time.Second, func() error {
			if calls.Add(1) == 1 {
				return errors.New("transient")
			}
			return nil
		}, nil)
		s.MarkDirty()
		time.Sleep(2 * time.Second)
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v, want nil (the final save succeeded)", err)
		}
	})
}

func TestSaverConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		state, saved := 0, 0
		s := NewSaver(time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			saved = state
			return nil
		}, nil)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					mu.Lock()
					state++
					s.MarkDirty() // with the lock save takes held
					mu.Unlock()
					time.Sleep(time.Microsecond)
				}
			})
		}
		wg.Wait()
		for range 4 {
			wg.Go(func() {
				if err := s.Close(); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if saved != 800 {
			t.Errorf("saved state %d, want 800 (the final save sees every change)", saved)
		}
	})
}
