#include "support/crash_vfs.h"

#include <sqlite3.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace tandem::testing {
namespace {

// A write (data) or a truncate (truncate = true, offset = the new size) not yet synced.
struct Pending {
  bool truncate = false;
  int64_t offset = 0;
  std::string data;
};

struct FileState {
  std::string durable;  // the file as of its last sync
  std::vector<Pending> pending;
};

void write_into(std::string& content, const Pending& p) {
  const auto at = static_cast<size_t>(p.offset);
  if (p.truncate) {
    content.resize(at);
    return;
  }
  if (content.size() < at + p.data.size()) content.resize(at + p.data.size());
  std::memcpy(content.data() + at, p.data.data(), p.data.size());
}

struct State {
  std::mutex mu;
  sqlite3_vfs* real = nullptr;
  sqlite3_vfs vfs{};
  std::map<std::string, FileState> files;
  uint64_t calls = 0;
  uint64_t crash_at = 0, fail_at = 0;
  bool crashed = false, failed = false;
  std::string failed_call;

  // Counts a write, truncate or sync and says whether it must fail (its error code) or go on (0).
  int gate(int error_code, const char* what, const sqlite3_file* f, int64_t offset) {
    ++calls;
    if (crashed) return error_code;
    const bool crash = crash_at != 0 && calls == crash_at;
    const bool fail = fail_at != 0 && calls == fail_at;
    if (!crash && !fail) return SQLITE_OK;
    crashed = crashed || crash;
    failed = failed || fail;
    failed_call = std::string(what) + " of " + name_of(f) + " at " + std::to_string(offset);
    return error_code;
  }
  static std::string name_of(const sqlite3_file* f);
};

State& state() {
  static State s;
  return s;
}

struct File {
  sqlite3_file base;
  sqlite3_file* real;   // the default VFS's file, allocated right after this struct
  FileState* tracked;   // null for files without a name (temporary files)
};

sqlite3_file* real_of(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

std::string State::name_of(const sqlite3_file* f) {
  const FileState* tracked = reinterpret_cast<const File*>(f)->tracked;
  for (const auto& [path, file] : state().files) {
    if (&file == tracked) return path.substr(path.rfind('/') + 1);
  }
  return "a temporary file";
}

int x_close(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
}

int x_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xRead(r, buf, n, off);
}

int x_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (int rc = s.gate(SQLITE_IOERR_WRITE, "write", f, off)) return rc;
  sqlite3_file* r = real_of(f);
  const int rc = r->pMethods->xWrite(r, buf, n, off);
  auto* file = reinterpret_cast<File*>(f);
  if (rc == SQLITE_OK && file->tracked) {
    file->tracked->pending.push_back({false, off, std::string(static_cast<const char*>(buf), static_cast<size_t>(n))});
  }
  return rc;
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (int rc = s.gate(SQLITE_IOERR_TRUNCATE, "truncate", f, size)) return rc;
  sqlite3_file* r = real_of(f);
  const int rc = r->pMethods->xTruncate(r, size);
  auto* file = reinterpret_cast<File*>(f);
  if (rc == SQLITE_OK && file->tracked) file->tracked->pending.push_back({true, size, {}});
  return rc;
}

// The sync itself is simulated: what was pending becomes durable. Not passing it to the disk
// keeps the tests fast and changes nothing they check.
int x_sync(sqlite3_file* f, int) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (int rc = s.gate(SQLITE_IOERR_FSYNC, "sync", f, 0)) return rc;
  auto* file = reinterpret_cast<File*>(f);
  if (file->tracked) {
    for (const Pending& p : file->tracked->pending) write_into(file->tracked->durable, p);
    file->tracked->pending.clear();
  }
  return SQLITE_OK;
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileSize(r, size);
}
int x_lock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xLock(r, level);
}
int x_unlock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xUnlock(r, level);
}
int x_check_reserved(sqlite3_file* f, int* out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xCheckReservedLock(r, out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileControl(r, op, arg);
}
int x_sector_size(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xSectorSize(r);
}
int x_device_characteristics(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xDeviceCharacteristics(r);
}
// The WAL index lives in shared memory, which a power loss wipes and SQLite rebuilds from the
// WAL: these pass straight through.
int x_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmMap(r, region, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmLock(r, offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  r->pMethods->xShmBarrier(r);
}
int x_shm_unmap(sqlite3_file* f, int del) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmUnmap(r, del);
}
int x_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFetch(r, off, n, out);
}
int x_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xUnfetch(r, off, p);
}

const sqlite3_io_methods kMethods = {
    3,        x_close,         x_read,      x_write,        x_truncate,   x_sync,
    x_file_size, x_lock,       x_unlock,    x_check_reserved, x_file_control, x_sector_size,
    x_device_characteristics, x_shm_map, x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch,
    x_unfetch,
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int x_open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  State& s = state();
  auto* file = reinterpret_cast<File*>(f);
  file->base.pMethods = nullptr;
  file->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + sizeof(File));
  file->tracked = nullptr;
  const int rc = s.real->xOpen(s.real, name, file->real, flags, out_flags);
  if (rc != SQLITE_OK) return rc;
  file->base.pMethods = &kMethods;
  if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
    std::lock_guard<std::mutex> lock(s.mu);
    auto [it, added] = s.files.try_emplace(name);
    if (added) it->second.durable = read_all(name);  // what was on disk before: synced
    file->tracked = &it->second;
  }
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs*, const char* name, int) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.crashed) return SQLITE_IOERR_DELETE;
  s.files.erase(name);
  return s.real->xDelete(s.real, name, 0);
}

int x_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return state().real->xAccess(state().real, name, flags, out);
}
int x_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return state().real->xFullPathname(state().real, name, n, out);
}
void* x_dl_open(sqlite3_vfs*, const char* name) { return state().real->xDlOpen(state().real, name); }
void x_dl_error(sqlite3_vfs*, int n, char* out) { state().real->xDlError(state().real, n, out); }
void (*x_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) { return state().real->xDlSym(state().real, h, sym); }
void x_dl_close(sqlite3_vfs*, void* h) { state().real->xDlClose(state().real, h); }
int x_randomness(sqlite3_vfs*, int n, char* out) { return state().real->xRandomness(state().real, n, out); }
int x_sleep(sqlite3_vfs*, int us) { return state().real->xSleep(state().real, us); }
int x_current_time(sqlite3_vfs*, double* out) { return state().real->xCurrentTime(state().real, out); }
int x_get_last_error(sqlite3_vfs*, int n, char* out) { return state().real->xGetLastError(state().real, n, out); }
int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return state().real->xCurrentTimeInt64(state().real, out);
}

}  // namespace

void CrashVfs::register_once() {
  static const bool done = [] {
    State& s = state();
    s.real = sqlite3_vfs_find(nullptr);
    sqlite3_vfs& v = s.vfs;
    v.iVersion = 2;
    v.szOsFile = static_cast<int>(sizeof(File)) + s.real->szOsFile;
    v.mxPathname = s.real->mxPathname;
    v.zName = kName;
    v.xOpen = x_open;
    v.xDelete = x_delete;
    v.xAccess = x_access;
    v.xFullPathname = x_full_pathname;
    v.xDlOpen = x_dl_open;
    v.xDlError = x_dl_error;
    v.xDlSym = x_dl_sym;
    v.xDlClose = x_dl_close;
    v.xRandomness = x_randomness;
    v.xSleep = x_sleep;
    v.xCurrentTime = x_current_time;
    v.xGetLastError = x_get_last_error;
    v.xCurrentTimeInt64 = x_current_time_int64;
    return sqlite3_vfs_register(&v, 0) == SQLITE_OK;
  }();
  if (!done) throw std::runtime_error("cannot register the crash VFS");
}

namespace {

// Runs f on the state under its lock; the public calls come from test and writer threads alike.
template <class F>
auto locked(F f) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return f(s);
}

void forget_all(State& s) {
  s.files.clear();
  s.calls = s.crash_at = s.fail_at = 0;
  s.crashed = s.failed = false;
  s.failed_call.clear();
}

}  // namespace

void CrashVfs::reset() { locked(forget_all); }

void CrashVfs::crash_at(uint64_t n) {
  locked([n](State& s) { s.crash_at = n ? s.calls + n : 0; });
}

void CrashVfs::fail_at(uint64_t n) {
  locked([n](State& s) { s.fail_at = n ? s.calls + n : 0; });
}

bool CrashVfs::crashed() {
  return locked([](State& s) { return s.crashed; });
}

bool CrashVfs::failed() {
  return locked([](State& s) { return s.failed; });
}

std::string CrashVfs::failed_call() {
  return locked([](State& s) { return s.failed_call; });
}

uint64_t CrashVfs::calls() {
  return locked([](State& s) { return s.calls; });
}

uint64_t CrashVfs::lose_power(Rng& rng) {
  constexpr size_t kSector = 512;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  uint64_t lost = 0;
  for (auto& [path, file] : s.files) {
    std::string content = file.durable;
    for (const Pending& p : file.pending) {
      const uint64_t fate = rng.below(10);
      if (p.truncate) {
        if (fate < 5) write_into(content, p); else ++lost;
        continue;
      }
      if (fate < 5) {  // reached the disk whole
        write_into(content, p);
        continue;
      }
      ++lost;
      if (fate < 8) continue;  // never reached it
      // Torn: each sector of the write made it, did not, or was left holding garbage.
      for (size_t at = 0; at < p.data.size(); at += kSector) {
        const size_t n = std::min(kSector, p.data.size() - at);
        const uint64_t sector_fate = rng.below(3);
        if (sector_fate == 0) continue;
        Pending piece{false, p.offset + static_cast<int64_t>(at), p.data.substr(at, n)};
        if (sector_fate == 2) {
          for (char& c : piece.data) c = static_cast<char>(rng.below(256));
        }
        write_into(content, piece);
      }
    }
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  forget_all(s);  // what is on disk now counts as synced
  return lost;
}

}  // namespace tandem::testing
