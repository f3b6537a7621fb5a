package dumps

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"runtime"
	"sync"

	"github.com/valyala/fastjson"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// decoded is one record decoded and prepared, or why not.
type decoded struct {
	hb  *heartlogv1.Heartbeat
	err error
}

// chunk is a run of records in file order and, once a decoder is done
// with it, what each became.
type chunk struct {
	recs  []record
	bytes int // of the records' raw JSON
	out   []decoded
	done  chan struct{}
}

// chunkRecords and chunkBytes bound what a decoder takes at a time: 256
// records, or fewer when they pass 1 MiB of JSON, so that the chunks in
// flight (about 3 a core) hold a few MiB whatever the records' size (one
// may be 4 MiB).
const (
	chunkRecords = 256
	chunkBytes   = 1 << 20
)

// decodeParallel decodes and prepares the records on a decoder per CPU
// (most of an import's CPU is here: parsing, validation, the id's hash)
// and yields them in chunks, in file order, so that what comes after
// (batching) sees exactly the sequence a single loop would: the same file
// makes the same messages. An error of the records ends the sequence and
// is left in *readErr.
func decodeParallel(ctx context.Context, records iter.Seq2[record, error], o Options, readErr *error) iter.Seq[*chunk] {
	return func(yield func(*chunk) bool) {
		workers := max(1, runtime.GOMAXPROCS(0))
		work := make(chan *chunk, workers)
		order := make(chan *chunk, 2*workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := &decoder{o: o}
				for ch := range work {
					ch.out = make([]decoded, len(ch.recs))
					for i, rec := range ch.recs {
						ch.out[i] = d.prepare(rec)
					}
					close(ch.done)
				}
			}()
		}
		stop := make(chan struct{})
		go func() {
			defer close(order)
			defer close(work)
			ch := &chunk{done: make(chan struct{})}
			send := func() bool {
				select {
				case order <- ch:
				case <-stop:
					return false
				}
				work <- ch
				ch = &chunk{done: make(chan struct{})}
				return true
			}
			for rec, err := range records {
				if err != nil {
					*readErr = err
					break
				}
				if ctx.Err() != nil {
					break
				}
				if rec.raw != nil {
					rec.raw = bytes.Clone(rec.raw) // the reader reuses its buffers
				}
				ch.recs, ch.bytes = append(ch.recs, rec), ch.bytes+len(rec.raw)
				if (len(ch.recs) == chunkRecords || ch.bytes >= chunkBytes) && !send() {
					return
				}
			}
			if len(ch.recs) > 0 {
				send()
			}
		}()
		defer func() {
			close(stop)
			for range order { // let the reader end
			}
			wg.Wait()
		}()
		for ch := range order {
			<-ch.done
			if !yield(ch) {
				return
			}
		}
	}
}

// decoder is one worker's parser.
type decoder struct {
	o      Options
	parser fastjson.Parser
	arena  fastjson.Arena
}

// prepare decodes a record and prepares it as a live heartbeat.
func (w *decoder) prepare(rec record) decoded {
	hb, err := w.decode(rec)
	if err == nil {
		err = w.o.Limits.Prepare(hb, heartbeat.Origin{UserID: w.o.User.ID, Now: w.o.Now()})
	}
	return decoded{hb: hb, err: err}
}

// decode turns a record into a heartbeat as the API would decode it.
func (w *decoder) decode(rec record) (*heartlogv1.Heartbeat, error) {
	if rec.raw == nil {
		return nil, fmt.Errorf("line is longer than %d bytes", maxLine)
	}
	v, err := w.parser.ParseBytes(rec.raw)
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("heartbeat must be a JSON object, not %s", v.Type())
	}
	if w.o.Format == WakaTime {
		w.arena.Reset()
		w.mapID(v, "user_agent_id", "user_agent", w.o.UserAgents)
		w.mapID(v, "machine_name_id", "machine", w.o.Machines)
		// When WakaTime's server received it: its bookkeeping, not what
		// the plugin sent (kept, it would make every imported heartbeat
		// one that no plugin's resend could match).
		v.GetObject().Del("created_at")
	}
	return w.o.Limits.DecodeValue(v, w.o.Format == NDJSON)
}

// mapID replaces a WakaTime id field by the value it names, where the map
// has it and the heartbeat has no value of its own.
func (w *decoder) mapID(v *fastjson.Value, idField, field string, values map[string]string) {
	if values == nil {
		return
	}
	o := v.GetObject()
	id := o.Get(idField)
	if id == nil || id.Type() != fastjson.TypeString {
		return
	}
	value, ok := values[string(id.GetStringBytes())]
	if !ok {
		return
	}
	if have := o.Get(field); have == nil || len(have.GetStringBytes()) == 0 {
		o.Set(field, w.arena.NewString(value))
	}
	o.Del(idField)
}
