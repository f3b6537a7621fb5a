package heartbeat_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"heartlog/heartbeat"
)

// BenchmarkDecodeBulk is wakatime-cli's largest request: 25 heartbeats.
func BenchmarkDecodeBulk(b *testing.B) {
	items := make([]string, 25)
	for i := range items {
		items[i] = fmt.Sprintf(`{"branch":"feature/x","category":"coding","cursorpos":7,"entity":"/home/dev/proj/myrepo/file%d.go","type":"file","is_write":true,"language":"Go","line_additions":2,"line_deletions":1,"lineno":3,"lines":5,"project":"myrepo","project_root_count":4,"time":%d.4452016,"user_agent":"wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0"}`, i, 1795630654+i)
	}
	body := []byte("[" + strings.Join(items, ",") + "]")
	origin := heartbeat.Origin{UserID: "u", Now: time.Unix(1795630700, 0)}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := heartbeat.DefaultLimits.DecodeBulk(body)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range got {
			if err := heartbeat.DefaultLimits.Prepare(d.Heartbeat, origin); err != nil {
				b.Fatal(err)
			}
		}
	}
}
