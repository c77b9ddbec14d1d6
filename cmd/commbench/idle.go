package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
)

// Limits of the idle-connections figure.
const (
	parentReserveFiles = 1024             // descriptors kept for NATS, JetStream's files and the rest
	childReadyWait     = 5 * time.Minute  // bound on a child's connecting
	settleWait         = 30 * time.Second // bound on the gateway's catching up with a step
)

// idle measures the memory the gateway needs per idle connection. The
// clients run in child processes (this binary, idle-clients), so that
// this process holds the stack alone; memory per connection is the
// growth of the Go heap and stacks in use (after a collection) over the
// connections, RSS beside it.
func (r *runner) idle(ctx context.Context) error {
	s, err := r.ensureStack(ctx)
	if err != nil {
		return err
	}
	steps, skipped, err := r.idlePlan()
	if err != nil {
		return err
	}
	var seed [32]byte
	rand.Read(seed[:])
	if err := r.registerIdle(ctx, s, &seed, steps[len(steps)-1]); err != nil {
		return err
	}
	ic := &idleClients{r: r, s: s, seed: seed}
	defer ic.stop()
	r.say("waiting %v for JetStream's caches to expire", r.p.idleQuiet)
	time.Sleep(r.p.idleQuiet)
	base := sampleMemory()
	r.say("before: heap %s, stacks %s, RSS %s, %d goroutines", kib(base.heap), kib(base.stack), kib(base.rss), base.goroutines)
	for _, step := range steps {
		if err := ic.grow(ctx, step); err != nil {
			return err
		}
		m := sampleMemory()
		r.reportIdle(step, base, m)
		r.profileHeap(fmt.Sprintf("idle-%d", step))
	}
	for _, step := range skipped {
		r.add(row{figure: fmt.Sprintf("idle connections held by one gateway: %s", count(step)), goal: r.idleGoal(),
			verdict: "not run: file limit"})
	}
	return nil
}

func (r *runner) idleGoal() goal { return goal{limit: r.p.idleGoalKiB, unit: "KiB"} }

// idlePlan splits the steps into those this machine's limit on open
// files allows and the others; if some do not fit, the largest count
// that does (in thousands) is measured too.
func (r *runner) idlePlan() (steps, skipped []int, err error) {
	limit, err := raiseFileLimit()
	if err != nil {
		return nil, nil, err
	}
	open := openFiles()
	capacity := int(limit) - open - parentReserveFiles
	for _, n := range r.p.idleSteps {
		if n <= capacity {
			steps = append(steps, n)
		} else {
			skipped = append(skipped, n)
		}
	}
	if len(skipped) > 0 {
		most := capacity / 1000 * 1000
		if most > 0 && (len(steps) == 0 || most > steps[len(steps)-1]) {
			steps = append(steps, most)
		}
		r.note("idle: the limit on open files is %d (%d open already) and this process may not raise it further, so the gateway "+
			"can hold at most about %s connections: %s not run. Raise the hard limit (ulimit -Hn, LimitNOFILE) to measure them",
			limit, open, count(capacity), joinCounts(skipped))
	}
	if len(steps) == 0 {
		return nil, nil, fmt.Errorf("the limit on open files (%d) leaves no room for %s connections", limit, count(r.p.idleSteps[0]))
	}
	return steps, skipped, nil
}

func joinCounts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = count(n)
	}
	return strings.Join(s, ", ")
}

// openFiles counts this process's open descriptors (0 if unknown).
func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
}

// registerIdle registers the idle clients [0, n), derived from seed.
func (r *runner) registerIdle(ctx context.Context, s *stack.Stack, seed *[32]byte, n int) error {
	t := time.Now()
	pubs, err := idlePublics(seed, n)
	if err != nil {
		return err
	}
	regs := make([]keyserver.Registration, n)
	for i, p := range pubs {
		regs[i] = keyserver.Registration{Public: p}
	}
	if err := s.Keyserver().RegisterClients(ctx, keyserver.Actor{}, regs); err != nil {
		return fmt.Errorf("registering the idle clients: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Sync(sctx); err != nil {
		return err
	}
	r.say("registered %s idle clients in %v", count(n), time.Since(t).Round(time.Millisecond))
	return nil
}

// memSample is this process's memory after a collection.
type memSample struct {
	heap, stack, rss uint64 // bytes: HeapInuse, StackInuse, VmRSS
	goroutines       int
}

func sampleMemory() memSample {
	runtime.GC()
	debug.FreeOSMemory() // collects again (stacks shrink at each) and returns free memory, for RSS
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse, rss: vmRSS(), goroutines: runtime.NumGoroutine()}
}

// vmRSS is this process's resident set from /proc/self/status (0 if
// unknown).
func vmRSS() uint64 {
	var kb uint64
	fmt.Sscanf(procField("/proc/self/status", "VmRSS", ":"), "%d kB", &kb)
	return kb << 10
}

func kib(b uint64) string { return fmt.Sprintf("%.0f KiB", float64(b)/1024) }

func (r *runner) reportIdle(n int, base, m memSample) {
	held := r.stack.Gateway().Metrics.Connections()
	per := func(after, before uint64) float64 { return (float64(after) - float64(before)) / float64(n) / 1024 }
	goStack := per(m.heap+m.stack, base.heap+base.stack)
	row := row{figure: fmt.Sprintf("idle connections held by one gateway: %s", count(n)),
		ours: fmt.Sprintf("%.2f KiB per connection (heap %.2f + stacks %.2f); RSS %.2f KiB", goStack,
			per(m.heap, base.heap), per(m.stack, base.stack), per(m.rss, base.rss)),
		ratio: nanRatio, goal: r.idleGoal(), checked: goStack}
	if held != int64(n) {
		row.verdict = fmt.Sprintf("error: the gateway holds %d", held)
		r.failed = true
	}
	r.add(row)
	r.note("idle %s: %.2f goroutines per connection; heap %s → %s, stacks %s → %s, RSS %s → %s", count(n),
		float64(m.goroutines-base.goroutines)/float64(n), kib(base.heap), kib(m.heap), kib(base.stack), kib(m.stack),
		kib(base.rss), kib(m.rss))
}

// idleClients are the child processes holding connections.
type idleClients struct {
	r        *runner
	s        *stack.Stack
	seed     [32]byte
	held     int
	children []*exec.Cmd
	stdins   []io.Closer
}

// grow starts children until n connections are held and the gateway
// counts them all.
func (ic *idleClients) grow(ctx context.Context, n int) error {
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	perChild := int(limit) - childReserveFiles
	for ic.held < n {
		c := min(n-ic.held, perChild)
		if err := ic.spawn(ctx, ic.held, c); err != nil {
			return err
		}
		ic.held += c
	}
	gw := ic.s.Gateway().Metrics
	err = loadgen.Poll(ctx, settleWait, func() bool { return gw.Connections() >= int64(n) },
		fmt.Sprintf("the gateway did not count %d connections", n))
	if err != nil {
		return err
	}
	ic.r.say("the gateway holds %d connections; waiting %v for JetStream's caches to expire", gw.Connections(), ic.r.p.idleQuiet)
	time.Sleep(ic.r.p.idleQuiet)
	return nil
}

// spawn starts a child holding clients [from, from+count) and waits
// until it reports them connected.
func (ic *idleClients) spawn(ctx context.Context, from, count int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	key := ic.s.Keys().Gateway.Public()
	cmd := exec.CommandContext(ctx, exe, childCommand, "--gateway", ic.s.GatewayAddr(),
		"--server-key", hex.EncodeToString(key[:]), "--seed", hex.EncodeToString(ic.seed[:]),
		"--from", strconv.Itoa(from), "--count", strconv.Itoa(count),
		"--per-addr", strconv.Itoa(ic.r.p.idlePerAddr), "--dialers", strconv.Itoa(ic.r.p.idleDialers))
	cmd.Stderr = ic.r.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting an idle-clients child: %w", err)
	}
	ic.children, ic.stdins = append(ic.children, cmd), append(ic.stdins, stdin)
	ic.r.say("child %d: connecting clients %d..%d", cmd.Process.Pid, from, from+count-1)
	return ic.awaitReady(stdout, count)
}

// awaitReady follows a child's report lines until it is ready.
func (ic *idleClients) awaitReady(stdout io.Reader, want int) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(childReadyWait)
	for {
		select {
		case <-timeout:
			return fmt.Errorf("an idle-clients child did not connect %d clients within %v", want, childReadyWait)
		case line, ok := <-lines:
			if !ok {
				return fmt.Errorf("an idle-clients child ended before it was ready")
			}
			if done, err := ic.childLine(line, want); done || err != nil {
				go func() { // keep the pipe drained
					for range lines {
					}
				}()
				return err
			}
		}
	}
}

func (ic *idleClients) childLine(line string, want int) (done bool, err error) {
	kind, rest, _ := strings.Cut(line, " ")
	var connected, failed int
	fmt.Sscanf(rest, "%d %d", &connected, &failed)
	switch kind {
	case "progress":
		ic.r.say("child: %s of %s connected, %d failed", count(ic.held+connected), count(ic.held+want), failed)
	case "ready":
		if failed > 0 || connected != want {
			return true, fmt.Errorf("an idle-clients child connected %d of %d clients (%d failed)", connected, want, failed)
		}
		return true, nil
	case "error":
		return true, fmt.Errorf("idle-clients child: %s", rest)
	}
	return false, nil
}

// stop closes the children's standard inputs, which ends them, and
// waits for them (killing any that does not end within 30 s).
func (ic *idleClients) stop() {
	for _, in := range ic.stdins {
		in.Close()
	}
	for _, cmd := range ic.children {
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	gw := ic.s.Gateway().Metrics
	loadgen.Poll(context.Background(), settleWait, func() bool { return gw.Connections() == 0 }, "")
}
