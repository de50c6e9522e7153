// One line per event worth reading, with the document and session; text or JSON.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace tandem::net {

class Logger {
 public:
  enum Level { kInfo, kWarn, kError };
  using Field = std::pair<std::string_view, std::string>;

  Logger(bool json, bool quiet, bool silent = false) : json_(json), quiet_(quiet), silent_(silent) {}
  // event: a short stable name ("session.open"); fields: key/value pairs (doc=..., session=...).
  void log(Level level, std::string_view event, std::initializer_list<Field> fields);
  void info(std::string_view e, std::initializer_list<Field> f) { log(kInfo, e, f); }
  void warn(std::string_view e, std::initializer_list<Field> f) { log(kWarn, e, f); }
  void error(std::string_view e, std::initializer_list<Field> f) { log(kError, e, f); }

 private:
  std::mutex mu_;
  bool json_;
  bool quiet_;
  bool silent_;
};

}  // namespace tandem::net
