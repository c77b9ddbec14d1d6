package main

import "context"

func (r *runner) fanout(ctx context.Context) error { return nil }
