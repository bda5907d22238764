package files

// SetHookBeforeFinalStat installs hookBeforeFinalStat for a test and
// returns the function that removes it.
func SetHookBeforeFinalStat(f func(path string)) (restore func()) {
	hookBeforeFinalStat = f
	return func() { hookBeforeFinalStat = nil }
}
