package heartbeat

import (
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Origin is what a request says around its heartbeats.
type Origin struct {
	UserID    string
	UserAgent string // the request's User-Agent header
	Machine   string // X-Machine-Name, already unescaped
	Now       time.Time
}

// Prepare makes a decoded heartbeat ready for the log: it sets the owner,
// fills machine and user agent from the request where the heartbeat carries
// none, reads editor, plugin and operating system from the user agent where the
// client did not name them,
// validates, and sets the id last, over the final content.
func (l Limits) Prepare(hb *heartlogv1.Heartbeat, o Origin) error {
	hb.UserId = o.UserID
	if hb.Machine == "" {
		hb.Machine = o.Machine
	}
	if hb.UserAgent == "" {
		hb.UserAgent = o.UserAgent
	}
	if err := l.Validate(hb, o.Now); err != nil {
		return err
	}
	c := ParseUserAgent(hb.UserAgent)
	fill(&hb.Editor, c.Editor)
	fill(&hb.Plugin, c.Plugin)
	fill(&hb.OperatingSystem, c.OperatingSystem)
	hb.Id = ID(hb)
	return nil
}

func fill(field *string, value string) {
	if *field == "" {
		*field = value
	}
}
