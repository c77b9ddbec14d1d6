package main

import "context"

func (r *runner) ingress(ctx context.Context) error  { return nil }
func (r *runner) storm(ctx context.Context) error    { return nil }
func (r *runner) fanout(ctx context.Context) error   { return nil }
