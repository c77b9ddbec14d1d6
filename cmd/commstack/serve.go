package main

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/stack"
)

// serve runs the stack until ctx ends, then stops it gracefully.
func serve(ctx context.Context, cfg *config, log zerolog.Logger) error {
	cfg.stack.Log = log
	s, err := stack.Start(ctx, cfg.stack)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info().Msg("shutting down")
	s.Close()
	return nil
}
