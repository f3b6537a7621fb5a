package pgheartbeats

// Columns exposes the column list to the black-box tests.
var Columns = columns
