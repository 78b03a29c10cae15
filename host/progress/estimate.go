package progress

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Record is how a build of one element set went: the time from each of
// its events to the next, in order. The next build of the same elements
// estimates from it how far along it is and how long is left.
type Record struct {
	Segments []Segment `json:"segments"`
}

// Segment is the time from an event (by its label) to the next.
type Segment struct {
	Label   string  `json:"label"`
	Seconds float64 `json:"seconds"`
}

// maxSegments bounds a record: the guest's events come from hooks that
// may be anyone's, and a record is read on every build.
const maxSegments = 4096

// merge adds to r the segments of old that r lacks, each after the
// segment it followed in old: what a build resumed from a checkpoint
// skipped still counts in the estimate of a build that runs it.
func (r *Record) merge(old *Record) {
	if old == nil {
		return
	}
	have := map[string]bool{}
	for _, s := range r.Segments {
		have[s.Label] = true
	}
	pos := 0
	for _, s := range old.Segments {
		if have[s.Label] {
			pos = slices.IndexFunc(r.Segments, func(x Segment) bool { return x.Label == s.Label }) + 1
			continue
		}
		if len(r.Segments) >= maxSegments {
			return
		}
		r.Segments = slices.Insert(r.Segments, pos, s)
		have[s.Label] = true
		pos++
	}
}

// total is the whole build's time.
func (r *Record) total() time.Duration {
	var t float64
	for _, s := range r.Segments {
		t += s.Seconds
	}
	return seconds(t)
}

// at is how much of the build lies before label and how long the
// segment from it took, if the record has it.
func (r *Record) at(label string) (before, seg time.Duration, ok bool) {
	var t float64
	for _, s := range r.Segments {
		if s.Label == label {
			return seconds(t), seconds(s.Seconds), true
		}
		t += s.Seconds
	}
	return 0, 0, false
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Estimate is how far along a build is by its record, and how long is
// left.
type Estimate struct {
	Done, Total time.Duration
}

// Left is the time the estimate says remains.
func (e Estimate) Left() time.Duration { return max(e.Total-e.Done, 0) }

// Fraction is how much of the build is done, from 0 to 1.
func (e Estimate) Fraction() float64 {
	if e.Total <= 0 {
		return 0
	}
	return min(float64(e.Done)/float64(e.Total), 1)
}

// estimate says where a build is that last passed label since ago: the
// record's time up to label, and of the segment from it no more than the
// record's own.
func (r *Record) estimate(label string, since time.Duration) (Estimate, bool) {
	if r == nil {
		return Estimate{}, false
	}
	before, seg, ok := r.at(label)
	if !ok {
		return Estimate{}, false
	}
	return Estimate{Done: before + min(since, seg), Total: r.total()}, true
}

// Timings keeps the record of each element set's last build, in a
// directory of the user's cache.
type Timings struct {
	Dir string
}

// TimingsKey names an element set: what shapes how long its build takes.
func TimingsKey(arch string, types, elements []string) string {
	els := slices.Sorted(slices.Values(elements))
	sum := sha256.Sum256([]byte(arch + "\x00" + strings.Join(types, ",") + "\x00" + strings.Join(els, " ")))
	return hex.EncodeToString(sum[:8])
}

func (t *Timings) path(key string) string { return filepath.Join(t.Dir, key+".json") }

// maxRecordBytes bounds a record file as read.
const maxRecordBytes = 1 << 20

// Load is the record kept for key, or nil when there is none (or it
// cannot be read: an estimate is never worth failing a build for).
func (t *Timings) Load(key string) *Record {
	if t == nil {
		return nil
	}
	f, err := os.Open(t.path(key))
	if err != nil {
		return nil
	}
	defer f.Close()
	var r Record
	if err := json.NewDecoder(io.LimitReader(f, maxRecordBytes)).Decode(&r); err != nil || len(r.Segments) > maxSegments {
		return nil
	}
	return &r
}

// Save keeps r for key, replacing what was kept, atomically.
func (t *Timings) Save(key string, r *Record) error {
	if t == nil {
		return nil
	}
	if err := os.MkdirAll(t.Dir, 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(t.Dir, "."+key+"-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), t.path(key))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
