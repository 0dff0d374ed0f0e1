// Package reliability proves autofloss's "loses nothing, charges once" guarantees under faults: real worker
// and scheduler processes (the built cmd/worker and cmd/scheduler binaries) SIGKILLed and SIGTERMed
// mid-run, a Redis restarted mid-run, a SQLite store killed mid-transaction, a platform fake answering
// errors, throttles, dropped connections and truncated bodies, and several scheduler replicas ticking
// together. It holds tests only (this file exists for the package documentation); everything runs on
// loopback against the esptest fakes, the sandbox mail world, private redis-servers and SQLite files.
package reliability
