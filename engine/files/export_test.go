package files

// SetHookBeforeFinalStat installs hookBeforeFinalStat for a test and
// returns the function that removes it.
func SetHookBeforeFinalStat(f func(path string)) (restore func()) {
	hookBeforeFinalStat = f
	return func() { hookBeforeFinalStat = nil }
}

// SetHookRestored installs hookRestored for a test and returns the
// function that removes it.
func SetHookRestored(f func(remembered int)) (restore func()) {
	hookRestored = f
	return func() { hookRestored = nil }
}

// SetRestoreBatchHooks installs hookBackgroundSync and hookLoad for a test
// and returns the function that removes them.
func SetRestoreBatchHooks(backgroundSync func() func(), load func()) (restore func()) {
	hookBackgroundSync, hookLoad = backgroundSync, load
	return func() { hookBackgroundSync, hookLoad = nil, nil }
}

// SetHookBeforeOpen installs hookBeforeOpen for a test and returns the
// function that removes it.
func SetHookBeforeOpen(f func(path string)) (restore func()) {
	hookBeforeOpen = f
	return func() { hookBeforeOpen = nil }
}
