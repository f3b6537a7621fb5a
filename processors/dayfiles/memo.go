package dayfiles

import (
	"container/list"
	"sync"
)

// memo remembers the last known bytes and tag of day files, least recently
// used first out once it holds more than its budget. A nil memo remembers
// nothing, so the sink calls it without checking.
//
// An entry may be stale (another writer changed the file): the sink then
// learns it from the conditional write that is refused, and forgets it.
type memo struct {
	mu     sync.Mutex
	budget int64
	size   int64
	order  *list.List // of *memoEntry, most recently used at the front
	byKey  map[string]*list.Element
}

type memoEntry struct {
	key, tag string
	data     []byte
}

func newMemo(budget int64) *memo {
	return &memo{budget: budget, order: list.New(), byKey: map[string]*list.Element{}}
}

func (m *memo) get(key string) (data []byte, tag string, ok bool) {
	if m == nil {
		return nil, "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	el := m.byKey[key]
	if el == nil {
		return nil, "", false
	}
	m.order.MoveToFront(el)
	e := el.Value.(*memoEntry)
	return e.data, e.tag, true
}

// put remembers data under tag; an entry without a tag could never guard a
// write, so it is not kept.
func (m *memo) has(key string) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byKey[key] != nil
}

func (m *memo) put(key string, data []byte, tag string) {
	if m == nil || tag == "" || int64(len(data)) > m.budget {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeLocked(key)
	m.byKey[key] = m.order.PushFront(&memoEntry{key: key, tag: tag, data: data})
	m.size += int64(len(data))
	for m.size > m.budget {
		m.removeLocked(m.order.Back().Value.(*memoEntry).key)
	}
}

func (m *memo) forget(key string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeLocked(key)
}

func (m *memo) removeLocked(key string) {
	el := m.byKey[key]
	if el == nil {
		return
	}
	m.order.Remove(el)
	delete(m.byKey, key)
	m.size -= int64(len(el.Value.(*memoEntry).data))
}
