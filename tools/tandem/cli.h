// Argument handling shared by the `tandem` subcommands.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "crdt/status.h"

namespace tandem::cli {

using crdt::Result;

// "--name value" (or "--name=value") options and positional arguments. Switches (given to the
// constructor) take no value: "--quiet" alone is on, and a following 0/1/true/false/yes/no is
// read as its value. Each option a command reads is marked used; ok() is false if an option was
// malformed, out of range, or not used by the command (a typo).
class Args {
 public:
  Args(int argc, char** argv, const std::set<std::string>& switches = {}) {
    for (int i = 0; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
      } else if (a.rfind("--", 0) == 0) {
        const auto eq = a.find('=');
        if (eq != std::string::npos) {
          opts_[a.substr(0, eq)] = a.substr(eq + 1);
        } else if (switches.count(a)) {
          opts_[a] = i + 1 < argc && is_bool(argv[i + 1]) ? argv[++i] : "1";
        } else if (i + 1 < argc) {
          opts_[a] = argv[++i];
        } else {
          error_ = "option " + a + " needs a value";
        }
      } else {
        rest_.push_back(a);
      }
    }
  }
  bool help() const { return help_; }
  std::string value(const std::string& name, const std::string& dflt = "") {
    used_.insert(name);
    auto it = opts_.find(name);
    return it == opts_.end() ? dflt : it->second;
  }
  bool has(const std::string& name) const { return opts_.count(name) > 0; }
  // A whole number from `min` to `max`.
  uint64_t number(const std::string& name, uint64_t dflt, uint64_t min = 0, uint64_t max = UINT64_MAX) {
    const std::string v = value(name);
    if (v.empty() && !has(name)) return dflt;
    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 19 ||
        std::stoull(v) < min || std::stoull(v) > max) {
      set_error("option " + name + " wants a whole number from " + std::to_string(min) + " to " +
                (max == UINT64_MAX ? std::string("2^64 - 1") : std::to_string(max)) + ", not '" + v + "'");
      return dflt;
    }
    return std::stoull(v);
  }
  // A switch: off unless given; "0", "false" and "no" turn it off.
  bool flag(const std::string& name) {
    const std::string v = value(name);
    if (!has(name)) return false;
    if (!is_bool(v)) set_error("option " + name + " is on or off (1 or 0), not '" + v + "'");
    return v == "1" || v == "true" || v == "yes";
  }
  const std::vector<std::string>& rest() const { return rest_; }
  bool ok() {
    if (!error_.empty()) return false;
    for (const auto& [k, v] : opts_) {
      if (!used_.count(k)) {
        error_ = "unknown option " + k + " (see --help)";
        return false;
      }
    }
    return true;
  }
  int fail() const {
    std::fprintf(stderr, "tandem: %s\n", error_.c_str());
    return 2;
  }

 private:
  static bool is_bool(const std::string& v) {
    return v == "0" || v == "1" || v == "true" || v == "false" || v == "yes" || v == "no";
  }
  void set_error(std::string e) {
    if (error_.empty()) error_ = std::move(e);
  }
  std::map<std::string, std::string> opts_;
  std::set<std::string> used_;
  std::vector<std::string> rest_;
  std::string error_;
  bool help_ = false;
};

inline int fail(const std::string& msg) {
  std::fprintf(stderr, "tandem: %s\n", msg.c_str());
  return 1;
}
// The message alone: the code's name (InvalidArgument, OutOfRange...) means nothing to a user.
inline int fail(const crdt::Status& st) { return fail(st.message()); }

// The database the offline commands read: --db FILE or URI, else --data DIR's tandem.db (as
// `tandem serve --data DIR` keeps it), else ./data/tandem.db. NotFound when `must_exist` and
// the file is not there.
Result<std::string> database_of(Args& args, bool must_exist);

int cmd_import(Args& args);
int cmd_replay(Args& args);
int cmd_export(Args& args);
int cmd_history(Args& args);
int cmd_blame(Args& args);
int cmd_diff(Args& args);
int cmd_inspect(Args& args);
int cmd_serve(Args& args);
int cmd_token(Args& args);

}  // namespace tandem::cli
