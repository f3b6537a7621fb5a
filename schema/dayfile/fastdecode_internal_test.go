package dayfile

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestSpecial checks the eight-bytes-at-a-time test against the plain one,
// on words made mostly of the bytes around the special ones.
func TestSpecial(t *testing.T) {
	near := []byte{0x00, 0x1f, 0x20, 0x21, '"' - 1, '"', '"' + 1, '\\' - 1, '\\', '\\' + 1, 'a', 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 8)
	for range 200_000 {
		want := false
		for i := range b {
			b[i] = near[rng.IntN(len(near))]
			if rng.IntN(3) == 0 {
				b[i] = 'a' + byte(rng.IntN(26))
			}
			want = want || b[i] == '"' || b[i] == '\\' || b[i] < 0x20
		}
		if got := special(binary.LittleEndian.Uint64(b)); got != want {
			t.Fatalf("special(%q) = %t, want %t", b, got, want)
		}
	}
}
