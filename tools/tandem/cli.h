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

// "--name value" options and positional arguments. Each option a command reads is marked used;
// ok() is false if an option was malformed or not used by the command (a typo).
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
      } else if (a.rfind("--", 0) == 0) {
        const auto eq = a.find('=');
        if (eq != std::string::npos) {
          opts_[a.substr(0, eq)] = a.substr(eq + 1);
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
  uint64_t number(const std::string& name, uint64_t dflt) {
    const std::string v = value(name);
    if (v.empty()) return dflt;
    if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 19) {
      error_ = "option " + name + " wants a number, not '" + v + "'";
      return dflt;
    }
    return std::stoull(v);
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
inline int fail(const crdt::Status& st) { return fail(st.ToString()); }

int cmd_import(Args& args);
int cmd_replay(Args& args);
int cmd_export(Args& args);
int cmd_inspect(Args& args);
int cmd_serve(Args& args);
int cmd_token(Args& args);

}  // namespace tandem::cli
