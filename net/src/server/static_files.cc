#include "static_files.h"

#include <zlib.h>

#include <cctype>
#include <filesystem>
#include <fstream>

namespace tandem::net {

using crdt::Status;

namespace {

const char* mime_of(std::string_view path) {
  auto ends = [&](std::string_view ext) { return path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".map") || ends(".json")) return "application/json";
  if (ends(".wasm")) return "application/wasm";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  if (ends(".txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

// "name-HASH.ext" with HASH 8 or more letters and digits (esbuild's [hash]).
bool has_content_hash(std::string_view path) {
  const std::string_view name = path.substr(path.rfind('/') + 1);
  const size_t dot = name.find('.');
  const size_t dash = name.substr(0, dot).rfind('-');
  if (dot == std::string_view::npos || dash == std::string_view::npos || dot - dash - 1 < 8) return false;
  for (size_t i = dash + 1; i < dot; ++i) {
    if (!std::isalnum(static_cast<unsigned char>(name[i]))) return false;
  }
  return true;
}

// gzip (RFC 1952) at the best compression; empty on failure.
std::string gzip(const std::string& in) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

// A strong ETag from the content (FNV-1a, 64 bits: it tells versions of one file apart).
std::string etag_of(const std::string& body) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

crdt::Result<StaticFiles> StaticFiles::load(const std::string& dir, uint64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec)) {
    return Status::NotFound("no index.html in " + dir);
  }
  StaticFiles out;
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string rel = "/" + fs::relative(it->path(), dir, ec).generic_string();
    std::ifstream in(it->path(), std::ios::binary);
    if (!in) return Status::IOError("cannot read " + it->path().string());
    File f;
    f.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    total += f.body.size();
    if (total > max_bytes) return Status::ResourceExhausted("the editor's files in " + dir + " pass " + std::to_string(max_bytes) + " bytes");
    f.type = mime_of(rel);
    f.etag = etag_of(f.body);
    if (rel == "/index.html") {
      f.cache = "no-store";  // it names the hashed files: a new build must be seen at once
    } else if (rel.rfind("/assets/", 0) == 0 && has_content_hash(rel)) {
      f.cache = "public, max-age=31536000, immutable";
    }
    const bool compressible = std::string_view(f.type).rfind("text/", 0) == 0 || std::string_view(f.type) == "application/json" ||
                              std::string_view(f.type) == "image/svg+xml" || std::string_view(f.type) == "application/wasm";
    if (compressible && f.body.size() > 256) {
      std::string z = gzip(f.body);
      if (!z.empty() && z.size() < f.body.size() * 9 / 10) f.gzip = std::move(z);
    }
    out.files_.emplace(rel, std::move(f));
  }
  if (ec) return Status::IOError("cannot read " + dir + ": " + ec.message());
  return out;
}

const StaticFiles::File* StaticFiles::find(std::string_view path) const {
  if (path == "/" || path.rfind("/d/", 0) == 0) path = "/index.html";
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

bool accepts_gzip(std::string_view ae) {
  for (size_t at = 0; at < ae.size();) {
    size_t end = ae.find(',', at);
    if (end == std::string_view::npos) end = ae.size();
    std::string_view item = ae.substr(at, end - at);
    at = end + 1;
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding != "gzip" && coding != "*") continue;
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      const size_t q = params.find("q=");
      if (q != std::string_view::npos) {
        std::string_view v = params.substr(q + 2);
        // q=0, q=0.0, q=0.00...: refused
        bool zero = !v.empty() && v[0] == '0';
        for (size_t i = 1; zero && i < v.size() && v[i] != ' ' && v[i] != ';'; ++i) zero = v[i] == '.' || v[i] == '0';
        if (zero) return false;
      }
    }
    return true;
  }
  return false;
}

}  // namespace tandem::net
