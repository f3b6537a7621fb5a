package restore

// SetBeforeWrite sets a hook that runs between restore's first read of a
// file and its write.
func SetBeforeWrite(o *Options, f func(key string)) { o.beforeWrite = f }
