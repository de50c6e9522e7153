// The editor's files, read once when the server starts and kept in memory with a gzip copy of
// each one that compression makes smaller. How long a browser may keep each is decided by its
// name: files whose name carries a content hash ("app-3f9c2a1b.js", written by
// web-editor/build.sh) never change, so they are cached for a year; the page itself is never
// cached, so that a new build's page (naming new hashes) is always fetched; anything else is
// revalidated through its ETag.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "crdt/status.h"

namespace tandem::net {

class StaticFiles {
 public:
  struct File {
    std::string body;
    std::string gzip;  // empty when compressing does not pay
    std::string etag;  // quoted, from the content
    const char* type = "application/octet-stream";
    const char* cache = "no-cache";
  };

  // Reads every file under `dir` (at most `max_bytes` in all). Errors: NotFound (no index.html),
  // IOError, ResourceExhausted.
  static crdt::Result<StaticFiles> load(const std::string& dir, uint64_t max_bytes = uint64_t{256} << 20);

  // The file for a URL path: "/" and "/d/..." are the page; nullptr when there is none.
  const File* find(std::string_view path) const;

 private:
  std::map<std::string, File, std::less<>> files_;  // by URL path, "/index.html", "/assets/..."
};

// Whether a request's Accept-Encoding admits gzip (and does not refuse it with q=0).
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace tandem::net
