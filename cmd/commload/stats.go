package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/streams"
)

// usage is what the load cost the server: JetStream writes by stream and
// this process's CPU time.
type usage struct {
	writes map[string]uint64 // stream → messages written during the load
	cpu    time.Duration     // user + system time of the whole process
	wall   time.Duration
}

// snapshot is the streams' last sequences and the CPU time at one moment.
type snapshot struct {
	seqs map[string]uint64
	cpu  time.Duration
	at   time.Time
}

func takeSnapshot(s *stack.Stack) (snapshot, error) {
	seqs, err := s.StreamLastSeqs()
	if err != nil {
		return snapshot{}, fmt.Errorf("reading the streams: %w", err)
	}
	return snapshot{seqs: seqs, cpu: loadgen.ProcessCPU(), at: time.Now()}, nil
}

func usageBetween(a, b snapshot) usage {
	u := usage{writes: map[string]uint64{}, cpu: b.cpu - a.cpu, wall: b.at.Sub(a.at)}
	for name, seq := range b.seqs {
		if seq > a.seqs[name] {
			u.writes[name] = seq - a.seqs[name]
		}
	}
	return u
}

// writesPer says how many JetStream writes each accepted message cost,
// in total and by stream.
func (u usage) writesPer(accepted uint64) string {
	if accepted == 0 {
		return "no message accepted"
	}
	byName := map[string]uint64{}
	var total uint64
	for name, n := range u.writes {
		byName[acceptedShards(name)] += n
		total += n
	}
	names := slices.Sorted(maps.Keys(byName))
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %.2f", name, float64(byName[name])/float64(accepted))
	}
	return fmt.Sprintf("%.2f (%s)", float64(total)/float64(accepted), strings.Join(parts, ", "))
}

// acceptedShards names every shard of the accepted messages as one: their
// writes together are the accepted messages' (one each).
func acceptedShards(stream string) string {
	if stream == streams.AcceptedStream || strings.HasPrefix(stream, streams.AcceptedStream+"_") {
		return streams.AcceptedStream + "[_*]"
	}
	return stream
}

// cores is the process's average CPU use during the load.
func (u usage) cores() float64 {
	if u.cpu < 0 || u.wall <= 0 {
		return 0
	}
	return u.cpu.Seconds() / u.wall.Seconds()
}
