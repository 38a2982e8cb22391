// Command tracebudget prints the latency budget of pushed messages from an
// execution trace of `mimids serve -trace FILE` (docs/performance.md, "Latency
// budget"), as parsed by the Go toolchain:
//
//	go tool trace -d=parsed FILE | go run ./cmd/bench/tracebudget
//
// It follows each message through the steps the server logs under runtime/trace
// (the `send` request's task, from its frame read; "sequenced", "committed",
// "fanout", "fanout-queued" and one "wrote" per subscriber socket) and counts, per
// message, goroutines created, goroutine wake-ups and syscalls from the first
// commit on, and the scheduler's delay from runnable to running.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// msg is one message's way through the server, in trace nanoseconds.
type msg struct {
	read, answered, committed, fanout, queued int64
	writes                                    []int64
}

// event is one line of `go tool trace -d=parsed` and the stack lines after it.
type event struct {
	kind  string
	time  int64
	args  string
	stack strings.Builder
}

var line = regexp.MustCompile(`^M=\S+ P=\S+ G=\S+ (\w+) Time=(\d+) (.*)$`)

// budget accumulates what the events say.
type budget struct {
	msgs                                    map[uint32]*msg
	taskBegin                               map[string]int64
	taskMsg                                 map[string]uint32
	first                                   int64 // the first commit
	creates, wakeCreates, wakeups, syscalls int
	writeSyscalls                           int
	runnable                                map[string]int64
	delays                                  []time.Duration
	gcMarks                                 int
}

func main() {
	b := &budget{msgs: map[uint32]*msg{}, taskBegin: map[string]int64{}, taskMsg: map[string]uint32{}, runnable: map[string]int64{}}
	if err := b.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "tracebudget:", err)
		os.Exit(1)
	}
	b.print(os.Stdout)
}

func (b *budget) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev *event
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "\t") || strings.HasSuffix(l, "Stack=") {
			if ev != nil {
				ev.stack.WriteString(l)
			}
			continue
		}
		if ev != nil {
			b.add(ev)
			ev = nil
		}
		if m := line.FindStringSubmatch(l); m != nil {
			t, _ := strconv.ParseInt(m[2], 10, 64)
			ev = &event{kind: m[1], time: t, args: m[3]}
		}
	}
	if ev != nil {
		b.add(ev)
	}
	return sc.Err()
}

// field returns the value of name=... in args (quotes removed).
func field(args, name string) string {
	i := strings.Index(args, name+"=")
	if i < 0 {
		return ""
	}
	v := args[i+len(name)+1:]
	if strings.HasPrefix(v, `"`) {
		if j := strings.Index(v[1:], `"`); j >= 0 {
			return v[1 : j+1]
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		return v[:j]
	}
	return v
}

func (b *budget) get(c uint32) *msg {
	m := b.msgs[c]
	if m == nil {
		m = &msg{}
		b.msgs[c] = m
	}
	return m
}

func (b *budget) add(ev *event) {
	switch ev.kind {
	case "TaskBegin":
		if field(ev.args, "Type") == "request send" {
			b.taskBegin[field(ev.args, "ID")] = ev.time
		}
	case "TaskEnd":
		if c, ok := b.taskMsg[field(ev.args, "ID")]; ok {
			b.get(c).answered = ev.time
		}
	case "Log":
		if field(ev.args, "Category") == "mimids" {
			b.log(ev, field(ev.args, "Message"), field(ev.args, "Task"))
		}
	case "RangeBegin":
		if b.first != 0 && field(ev.args, "Name") == "GC concurrent mark phase" {
			b.gcMarks++
		}
	case "StateTransition":
		b.transition(ev)
	}
}

func (b *budget) log(ev *event, message, task string) {
	step, n, ok := strings.Cut(message, " ")
	c, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil {
		return
	}
	m := b.get(uint32(c))
	switch step {
	case "sequenced":
		if t, ok := b.taskBegin[task]; ok {
			m.read = t
			b.taskMsg[task] = uint32(c)
		}
	case "committed":
		m.committed = ev.time
		if b.first == 0 {
			b.first = ev.time
		}
	case "fanout":
		m.fanout = ev.time
	case "fanout-queued":
		m.queued = ev.time
	case "wrote":
		m.writes = append(m.writes, ev.time)
	}
}

func (b *budget) transition(ev *event) {
	id := field(ev.args, "GoID")
	from, to, _ := strings.Cut(strings.Fields(strings.TrimPrefix(ev.args, "GoID="+id+" "))[0], "->")
	switch to {
	case "Runnable":
		b.runnable[id] = ev.time
	case "Running":
		if t, ok := b.runnable[id]; ok && b.first != 0 {
			b.delays = append(b.delays, time.Duration(ev.time-t))
		}
		delete(b.runnable, id)
	}
	if b.first == 0 {
		return
	}
	stack := ev.stack.String()
	switch {
	case from == "NotExist" && to == "Runnable":
		b.creates++
		if strings.Contains(stack, "gateway/conn.(*Conn).writer") {
			b.wakeCreates++
		}
	case from == "Waiting" && to == "Runnable":
		b.wakeups++
	case to == "Syscall":
		b.syscalls++
		if strings.Contains(stack, "gateway/conn.(*Conn).write") {
			b.writeSyscalls++
		}
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(float64(len(d)-1)*p)].Round(time.Microsecond)
}

func (b *budget) print(w io.Writer) {
	stages := []string{"read -> committed", "committed -> answered", "committed -> fan-out", "fan-out -> all queued",
		"fan-out -> first write", "fan-out -> median write", "fan-out -> last write", "read -> last write", "read -> each write"}
	ds := map[string][]time.Duration{}
	n, writes := 0, 0
	add := func(s string, from, to int64) {
		if from != 0 && to != 0 {
			ds[s] = append(ds[s], time.Duration(to-from))
		}
	}
	for _, m := range b.msgs {
		if m.read == 0 || m.committed == 0 || len(m.writes) == 0 {
			continue
		}
		n++
		writes += len(m.writes)
		slices.Sort(m.writes)
		last := m.writes[len(m.writes)-1]
		add("read -> committed", m.read, m.committed)
		add("committed -> answered", m.committed, m.answered)
		add("committed -> fan-out", m.committed, m.fanout)
		add("fan-out -> all queued", m.fanout, m.queued)
		add("fan-out -> first write", m.fanout, m.writes[0])
		add("fan-out -> median write", m.fanout, m.writes[len(m.writes)/2])
		add("fan-out -> last write", m.fanout, last)
		add("read -> last write", m.read, last)
		for _, t := range m.writes {
			add("read -> each write", m.read, t)
		}
	}
	fmt.Fprintf(w, "%d messages, %d socket writes (%.1f per message)\n", n, writes, float64(writes)/float64(max(n, 1)))
	fmt.Fprintf(w, "%-26s %10s %10s %10s %10s\n", "step", "p50", "p90", "p99", "max")
	for _, s := range stages {
		d := ds[s]
		fmt.Fprintf(w, "%-26s %10v %10v %10v %10v\n", s, pct(d, .5), pct(d, .9), pct(d, .99), pct(d, 1))
	}
	per := func(x int) float64 { return float64(x) / float64(max(n, 1)) }
	fmt.Fprintf(w, "per message from the first commit on: %.0f goroutines created (%.0f socket writers), %.0f wake-ups, %.0f syscalls (%.0f socket writes), %.2f GC cycles\n",
		per(b.creates), per(b.wakeCreates), per(b.wakeups), per(b.syscalls), per(b.writeSyscalls), per(b.gcMarks))
	fmt.Fprintf(w, "scheduler delay, runnable -> running: p50 %v, p90 %v, p99 %v (n=%d)\n",
		pct(b.delays, .5), pct(b.delays, .9), pct(b.delays, .99), len(b.delays))
}
