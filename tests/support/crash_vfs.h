// CrashVfs: an SQLite VFS over the default one that simulates power loss and I/O errors, for
// the storage durability tests. Modelled on the idea of SQLite's own crash tests (test6.c): a
// disk keeps what was synced; of what was written since the last sync of a file, any subset may
// reach the platter, in any order, and a write may be torn at sector boundaries with garbage in
// the sectors that did not make it.
//
// Every write, truncate and sync goes through to the real file (so the process sees its own
// writes) and is also recorded. Syncs are not passed to the disk: the VFS itself decides what a
// sync made durable, which keeps hundreds of simulated crashes fast.
//
// Use: register(), open a store with StoreOptions::vfs = kName, arm crash_at(n) or fail_at(n),
// run, close every connection, then lose_power() to rewrite the files as a disk might have left
// them, and reopen with the default VFS to check recovery.
#pragma once

#include <cstdint>
#include <string>

#include "support/random_edits.h"

namespace tandem::testing {

class CrashVfs {
 public:
  static constexpr const char* kName = "tandem-crash";
  // Registers the VFS (once per process; not as the default).
  static void register_once();

  // Forgets every file: what is on disk now counts as synced. Disarms crash_at and fail_at and
  // sets calls() to 0.
  static void reset();
  // Power is lost at the n-th write, truncate or sync from now (1-based; 0: never): that call
  // and every later one fail with an I/O error and change nothing, as if the process had died.
  static void crash_at(uint64_t n);
  // Only the n-th write, truncate or sync from now fails (SQLITE_IOERR_WRITE, _TRUNCATE or
  // _FSYNC) and changes nothing; later calls succeed.
  static void fail_at(uint64_t n);
  static bool crashed();
  static bool failed();  // whether the fail_at call has happened
  // The call that failed or crashed, as "write of db-wal at 4096".
  static std::string failed_call();
  // Writes, truncates and syncs seen since reset().
  static uint64_t calls();

  // After a crash, with every connection closed: rewrites each file the VFS saw as the disk may
  // have kept it, choosing per unsynced write to keep it, drop it or tear it. Returns how many
  // unsynced writes were dropped or torn (0 means this crash lost nothing). Then forgets every
  // file, as reset() does.
  static uint64_t lose_power(Rng& rng);
};

}  // namespace tandem::testing
