package streams

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"heartlog/heartbeat"
)

// SubjectPrefix is the first token of every heartbeat subject.
const SubjectPrefix = "heartbeats"

// Subject is where a batch of one UTC day (YYYYMMDD) and one partition goes.
func Subject(day string, partition uint32) string {
	return SubjectPrefix + "." + day + "." + strconv.FormatUint(uint64(partition), 10)
}

// DaySubjects is the filter that matches every partition of one day.
func DaySubjects(day string) string { return SubjectPrefix + "." + day + ".*" }

// PartitionSubjects is the filter that matches every day of one partition.
func PartitionSubjects(partition uint32) string {
	return SubjectPrefix + ".*." + strconv.FormatUint(uint64(partition), 10)
}

// ParseSubject splits a heartbeat subject into its day and partition.
func ParseSubject(subject string) (day string, partition uint32, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 3 || parts[0] != SubjectPrefix {
		return "", 0, fmt.Errorf("streams: %q is not a heartbeat subject", subject)
	}
	if _, err := time.Parse(heartbeat.DayLayout, parts[1]); err != nil {
		return "", 0, fmt.Errorf("streams: subject %q: bad day: %w", subject, err)
	}
	p, err := strconv.ParseUint(parts[2], 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("streams: subject %q: bad partition: %w", subject, err)
	}
	return parts[1], uint32(p), nil
}

// Partition maps a user to one of count partitions. It must stay stable for
// the life of a stream: every message of a user lands in one partition, which
// is what gives each user-day a single writer per sink.
func Partition(userID string, count uint32) uint32 {
	h := fnv.New32a()
	h.Write([]byte(userID))
	return h.Sum32() % count
}
