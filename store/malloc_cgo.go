//go:build cgo

package store

// The C heap SQLite allocates from is glibc's malloc, which gives every OS thread that mallocs under
// contention an arena of its own (up to 8 per core) and keeps freed memory in each. The floss pipeline
// calls SQLite from several goroutines at once (the reuse lookup beside the commit, the checkpointer),
// which cgo runs on several OS threads, and the worker's peak RSS rose by ~30 MB at 100,000 contacts and
// past the 200 MB goal at 1,000,000 (`autofloss bench -only floss`). Capping the arenas at two brings it
// back (100,000 contacts: 145-157 -> 128-130 MB, no slower).
//
// The cap must be set before the process's threads first malloc, which happens before main runs (a call
// from main or from store.Open measured no better than none), so it is a C constructor: it runs when the
// binary loads, once, for every binary that links the store. MALLOC_ARENA_MAX in the environment, read
// by glibc itself, is the operator's override and is left alone. Other C libraries (musl) are untouched.

/*
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

__attribute__((constructor)) static void autofloss_limit_malloc_arenas(void) {
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		mallopt(M_ARENA_MAX, 2);
	}
#endif
}
*/
import "C"
