#include "trace.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace tandem::trace {

namespace fs = std::filesystem;
using crdt::Result;
using crdt::Status;

namespace {

Result<std::string> read_maybe_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (!f) return Status::IOError("cannot open " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = 0;
  const char* msg = gzerror(f, &err);
  std::string why = err != Z_OK && err != Z_STREAM_END ? msg : "";
  gzclose(f);
  if (n < 0 || !why.empty()) return Status::Corruption("cannot decompress " + path + ": " + why);
  return out;
}

Result<Patch> parse_patch(const nlohmann::json& p) {
  if (!p.is_array() || p.size() != 3 || !p[0].is_number_unsigned() || !p[1].is_number_unsigned() ||
      !p[2].is_string()) {
    return Status::Corruption("patch is not [pos, delCount, insText]");
  }
  Patch out;
  out.pos = p[0].get<uint32_t>();
  out.del = p[1].get<uint32_t>();
  out.ins = p[2].get<std::string>();
  return out;
}

// "marks": [[from, to, name, value], ...] (value null removes; a comment's is {"id": ...}) and
// "blocks": [[pos, type, attrs], ...], into the engine's terms.
Status parse_formats(const nlohmann::json& tx, std::vector<Format>* out) {
  if (tx.contains("marks")) {
    for (const auto& m : tx["marks"]) {
      if (!m.is_array() || m.size() != 4 || !m[0].is_number_unsigned() || !m[1].is_number_unsigned() || !m[2].is_string()) {
        return Status::Corruption("bad mark");
      }
      Format f;
      f.from = m[0].get<uint32_t>();
      f.to = m[1].get<uint32_t>();
      f.name = m[2].get<std::string>();
      const auto& v = m[3];
      if (v.is_null()) {
        f.remove = true;
      } else if (v.is_boolean()) {
        f.value = "true";
      } else if (v.is_string()) {
        f.value = v.get<std::string>();
      } else if (v.is_object() && v.contains("id")) {
        f.value = v["id"].is_string() ? v["id"].get<std::string>() : v["id"].dump();
      } else {
        return Status::Corruption("bad mark value");
      }
      out->push_back(std::move(f));
    }
  }
  if (tx.contains("blocks")) {
    for (const auto& b : tx["blocks"]) {
      if (!b.is_array() || b.size() != 3 || !b[0].is_number_unsigned() || !b[1].is_string() || !b[2].is_object()) {
        return Status::Corruption("bad block");
      }
      Format f;
      f.mark = false;
      f.from = b[0].get<uint32_t>();
      f.name = b[1].get<std::string>();
      for (const char* key : {"level", "depth"}) {
        if (b[2].contains(key)) f.value = std::to_string(b[2][key].get<uint32_t>());
      }
      if (b[2].contains("language")) f.value = b[2]["language"].get<std::string>();
      out->push_back(std::move(f));
    }
  }
  return Status::OK();
}

}  // namespace

void strip_formats(Trace* t) {
  for (auto& tx : t->txns) tx.formats.clear();
  t->num_formats = 0;
  t->name += "-stripped";
}

Result<Trace> load(const std::string& path) {
  auto raw = read_maybe_gzip(path);
  if (!raw.ok()) return raw.status();
  nlohmann::json j = nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption(path + ": not a JSON object");
  Trace t;
  t.name = fs::path(path).filename().string();
  for (const char* ext : {".gz", ".json"}) {
    if (t.name.size() > strlen(ext) && t.name.ends_with(ext)) t.name.resize(t.name.size() - strlen(ext));
  }
  if (!j.contains("endContent") || !j["endContent"].is_string() || !j.contains("txns") || !j["txns"].is_array()) {
    return Status::Corruption(path + ": missing endContent or txns");
  }
  t.end_content = j["endContent"].get<std::string>();
  t.concurrent = j.value("kind", "") == "concurrent";
  if (t.concurrent) t.num_agents = j.value("numAgents", 0u);
  const auto& txns = j["txns"];
  t.txns.reserve(txns.size());
  for (size_t i = 0; i < txns.size(); ++i) {
    const auto& tx = txns[i];
    Txn out;
    if (!tx.contains("patches") || !tx["patches"].is_array()) return Status::Corruption(path + ": txn without patches");
    for (const auto& p : tx["patches"]) {
      auto patch = parse_patch(p);
      if (!patch.ok()) return patch.status().WithContext(path + " txn " + std::to_string(i));
      out.patches.push_back(std::move(*patch));
      ++t.num_patches;
    }
    Status fs = parse_formats(tx, &out.formats);
    if (!fs.ok()) return fs.WithContext(path + " txn " + std::to_string(i));
    t.num_formats += out.formats.size();
    if (t.concurrent) {
      out.agent = tx.value("agent", 0u);
      if (out.agent >= t.num_agents) return Status::Corruption(path + ": agent out of range");
      for (const auto& p : tx["parents"]) {
        const auto idx = p.get<uint32_t>();
        if (idx >= i) return Status::Corruption(path + ": parent after child");
        out.parents.push_back(idx);
      }
    }
    t.txns.push_back(std::move(out));
  }
  return t;
}

std::string traces_dir() {
  if (const char* env = std::getenv("TANDEM_TRACES"); env && *env) {
    return fs::is_directory(env) ? std::string(env) : std::string();
  }
  const fs::path dflt = fs::path(TANDEM_SOURCE_DIR) / ".." / "shared" / "traces";
  std::error_code ec;
  return fs::is_directory(dflt, ec) ? fs::weakly_canonical(dflt, ec).string() : std::string();
}

std::vector<std::string> list_traces(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& sub : {fs::path(dir), fs::path(dir) / "concurrent"}) {
    std::error_code ec;
    if (!fs::is_directory(sub, ec)) continue;
    for (const auto& e : fs::directory_iterator(sub, ec)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && (name.ends_with(".json.gz") || name.ends_with(".json"))) out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace tandem::trace
