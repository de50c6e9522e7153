#include <filesystem>

#include "storage/pg_store.h"
#include "storage/store.h"

namespace tandem::storage {

Result<std::unique_ptr<store::DocStore>> open_store(const std::string& target, bool read_only) {
  if (target.rfind("postgresql://", 0) == 0 || target.rfind("postgres://", 0) == 0) {
    PgOptions o;
    o.conninfo = target;
    o.read_only = read_only;
    auto s = PgStore::open(o);
    if (!s.ok()) return s.status();
    return std::unique_ptr<store::DocStore>(std::move(*s));
  }
  if (target.empty()) return Status::InvalidArgument("--db FILE (or postgresql://...) is required");
  if (read_only && !std::filesystem::exists(target)) return Status::NotFound("no database at " + target);
  if (!read_only) {
    std::error_code ec;
    const auto dir = std::filesystem::path(target).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  }
  StoreOptions o;
  o.path = target;
  o.read_only = read_only;
  auto s = Store::open(o);
  if (!s.ok()) return s.status();
  return std::unique_ptr<store::DocStore>(std::move(*s));
}

}  // namespace tandem::storage
