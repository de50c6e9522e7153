#include "log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace tandem::net {

namespace {

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void Logger::log(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (silent_ || (quiet_ && level == kInfo)) return;
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[80];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  const char* lv = level == kInfo ? "info" : level == kWarn ? "warn" : "error";
  std::string line;
  if (json_) {
    line.append("{\"time\":\"").append(ts).append("\",\"level\":\"").append(lv);
    line.append("\",\"event\":\"").append(escape(event)).append("\"");
    for (const auto& [k, v] : fields) line.append(",\"").append(escape(k)).append("\":\"").append(escape(v)).append("\"");
    line.append("}\n");
  } else {
    line.append(ts).append(" ").append(lv).append(" ").append(event);
    for (const auto& [k, v] : fields) {
      line.append(" ").append(k).append("=");
      if (v.find(' ') == std::string::npos && !v.empty()) {
        line.append(v);
      } else {
        line.append("\"").append(escape(v)).append("\"");
      }
    }
    line.append("\n");
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace tandem::net
