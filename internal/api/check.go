package api

import (
	"errors"
	"fmt"
)

// A checked document is one the client refuses when the answer decodes
// but lacks what every caller dereferences: a 200 with `{}` or `null`
// from something that is not a handover controller, or a controller of
// another version, must come back as an error, never as a nil record.
type checked interface{ check() error }

// errIncomplete is wrapped by every answer check refuses.
var errIncomplete = errors.New("incomplete answer")

func (u *Update) check() error {
	if u.Update == nil || u.ID == "" {
		return fmt.Errorf("%w: no update in it", errIncomplete)
	}
	return nil
}

func (us *Updates) check() error {
	for i, u := range us.Updates {
		if u == nil || u.ID == "" {
			return fmt.Errorf("%w: update %d of %d is empty", errIncomplete, i+1, len(us.Updates))
		}
	}
	return nil
}
