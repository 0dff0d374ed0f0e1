package verify

import (
	"runtime"
	"testing"
)

// TestListsMemory reports the heap the embedded lists take once loaded (no
// assertion on the figure: it is printed for BENCHMARKS.md; -v to see it).
func TestListsMemory(t *testing.T) {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	l, err := LoadLists("")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&b)
	t.Logf("lists loaded: %d disposable, %d free; heap +%.1f MiB", l.Size(ListDisposable), l.Size(ListFree), float64(b.HeapAlloc-a.HeapAlloc)/(1<<20))
	runtime.KeepAlive(l)
}
