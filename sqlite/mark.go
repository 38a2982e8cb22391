package sqlite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The mark file (<store>.mark) lives beside the store, outside it, so that a store
// that lost committed writes can be told from one that did not: it holds the store's
// incarnation and the highest commit count the server saw committed. Its 48 bytes:
//
//	magic "MIMIDSMK" | version 1 | 7 zero bytes | incarnation [16] |
//	commits uint64 | CRC-32 (IEEE) of the 40 bytes before | 4 zero bytes
//
// (integers big-endian). The server rewrites it in place after its commits (without
// fsync, which a killed process does not need) and fsyncs it about once a second
// and when it stops.
const (
	markMagic   = "MIMIDSMK"
	markSize    = 48
	markVersion = 1
	// markSyncEvery is how often the server fsyncs the mark file while it changes.
	markSyncEvery = time.Second
)

// ErrMarkDamaged reports a mark file that is not one, or whose checksum fails.
var ErrMarkDamaged = errors.New("sqlite: mark file damaged")

// Mark is the content of a mark file.
type Mark struct {
	Incarnation []byte // 16 bytes
	Commits     uint64
}

// MarkPath is the mark file of the store at path.
func MarkPath(path string) string { return path + ".mark" }

func (m Mark) encode() []byte {
	b := make([]byte, markSize)
	copy(b, markMagic)
	b[8] = markVersion
	copy(b[16:32], m.Incarnation)
	binary.BigEndian.PutUint64(b[32:40], m.Commits)
	binary.BigEndian.PutUint32(b[40:44], crc32.ChecksumIEEE(b[:40]))
	return b
}

func decodeMark(b []byte) (Mark, error) {
	if len(b) != markSize || string(b[:8]) != markMagic || b[8] != markVersion {
		return Mark{}, fmt.Errorf("%w: not a version %d mark of %d bytes", ErrMarkDamaged, markVersion, markSize)
	}
	if crc32.ChecksumIEEE(b[:40]) != binary.BigEndian.Uint32(b[40:44]) {
		return Mark{}, fmt.Errorf("%w: checksum mismatch", ErrMarkDamaged)
	}
	return Mark{Incarnation: bytes.Clone(b[16:32]), Commits: binary.BigEndian.Uint64(b[32:40])}, nil
}

// ReadMark reads the mark file at path (fs.ErrNotExist if there is none).
func ReadMark(path string) (Mark, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Mark{}, fmt.Errorf("sqlite: read mark: %w", err)
	}
	return decodeMark(b)
}

// readMarkSettled reads the mark, reading again a few times when it looks damaged: a
// read racing the server's in-place rewrite may see half of each.
func readMarkSettled(path string) (Mark, error) {
	var m Mark
	var err error
	for i := 0; i < 5; i++ {
		if m, err = ReadMark(path); !errors.Is(err, ErrMarkDamaged) {
			return m, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return m, err
}

// writeMarkFile replaces the mark file atomically and durably: a temporary file,
// fsync, rename, fsync of the directory.
func writeMarkFile(path string, m Mark) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: write mark: %w", err)
	}
	_, err = f.Write(m.encode())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sqlite: write mark: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("sqlite: sync %s: %w", dir, err)
	}
	return nil
}

// marker keeps the mark file current for the server: the writer reports each
// commit count (note never blocks), and the marker's goroutine rewrites the file
// with the latest one.
type marker struct {
	// Static after newMarker.
	f    *os.File
	inc  []byte
	kick chan struct{} // cap 1
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	latest  uint64 // highest commit count reported; Guarded by mu.
	written uint64 // Owned by run.
	synced  uint64 // Owned by run.
	err     error  // first write error; Guarded by mu.
}

func newMarker(path string, m Mark) (*marker, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open mark: %w", err)
	}
	mk := &marker{f: f, inc: m.Incarnation, latest: m.Commits, written: m.Commits, synced: m.Commits,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go mk.run()
	return mk, nil
}

// note records that commit count n is committed.
func (mk *marker) note(n uint64) {
	mk.mu.Lock()
	if n > mk.latest {
		mk.latest = n
	}
	mk.mu.Unlock()
	select {
	case mk.kick <- struct{}{}:
	default:
	}
}

func (mk *marker) run() {
	defer close(mk.done)
	t := time.NewTicker(markSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-mk.kick:
			mk.write()
		case <-t.C:
			mk.sync()
		case <-mk.stop:
			mk.write()
			mk.sync()
			return
		}
	}
}

func (mk *marker) write() {
	mk.mu.Lock()
	n := mk.latest
	mk.mu.Unlock()
	if n <= mk.written {
		return
	}
	if _, err := mk.f.WriteAt(Mark{Incarnation: mk.inc, Commits: n}.encode(), 0); err != nil {
		mk.fail(err)
		return
	}
	mk.written = n
}

func (mk *marker) sync() {
	if mk.synced == mk.written {
		return
	}
	if err := mk.f.Sync(); err != nil {
		mk.fail(err)
		return
	}
	mk.synced = mk.written
}

func (mk *marker) fail(err error) {
	mk.mu.Lock()
	if mk.err == nil {
		mk.err = fmt.Errorf("sqlite: mark: %w", err)
	}
	mk.mu.Unlock()
}

// close writes and fsyncs the latest count and closes the file.
func (mk *marker) close() error {
	close(mk.stop)
	<-mk.done
	cerr := mk.f.Close()
	mk.mu.Lock()
	defer mk.mu.Unlock()
	return errors.Join(mk.err, cerr)
}
