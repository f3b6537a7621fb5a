package reads

// SetBeforeFill makes r call f at each step of a cache fill ("check",
// "write"), so that a test can put another write between them.
func SetBeforeFill(r *Reader, f func(step string)) { r.beforeFill = f }
