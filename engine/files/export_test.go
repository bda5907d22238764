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

// SetHookWritten installs hookWritten for a test and returns the function
// that removes it.
func SetHookWritten(f func(tmp string)) (restore func()) {
	hookWritten = f
	return func() { hookWritten = nil }
}

// SetDirectWindows sets directWindowsMax and hookDirectWindow for a test
// and returns the function that puts them back.
func SetDirectWindows(max int, hook func(written bool)) (restore func()) {
	old := directWindowsMax
	directWindowsMax, hookDirectWindow = max, hook
	return func() { directWindowsMax, hookDirectWindow = old, nil }
}

// SetHookAssembled installs hookAssembled for a test and returns the
// function that removes it.
func SetHookAssembled(f func(part []byte)) (restore func()) {
	hookAssembled = f
	return func() { hookAssembled = nil }
}

// AlignedBuffer and FreeAligned expose the direct I/O windows' memory.
var AlignedBuffer, FreeAligned = alignedBuffer, freeAligned

// DirectWindowBytes is one direct I/O window.
const DirectWindowBytes = directWindowBytes
