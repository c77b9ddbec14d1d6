package events

import (
	"context"
	"fmt"
)

// WaitUntil waits until cond holds for the state, re-checking each time
// the projection advances, or until ctx ends. cond runs under the read
// lock and must not keep the state.
func (p *Projection) WaitUntil(ctx context.Context, cond func(*State) bool) error {
	for {
		p.mu.RLock()
		ok, ch := cond(p.state), p.advanced
		p.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("events: waiting for the log: %w", ctx.Err())
		}
	}
}
