package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// errorBody is the JSON shape of every error answer, as WakaTime clients
// expect it.
type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// writeTooMany answers 429 with msg and a Retry-After of the whole
// seconds past wait.
func writeTooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	writeError(w, http.StatusTooManyRequests, msg)
}
