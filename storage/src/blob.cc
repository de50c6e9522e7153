#include "blob.h"

#include <zlib.h>

#include "crdt/varint.h"

namespace tandem::storage {

namespace {
constexpr unsigned char kCompressed = 0x01;
constexpr size_t kMinToCompress = 512;
constexpr uint64_t kMaxBlob = uint64_t{1} << 30;
}  // namespace

std::string pack_blob(std::string_view bytes) {
  if (bytes.size() < kMinToCompress) return std::string(bytes);
  uLongf cap = compressBound(static_cast<uLong>(bytes.size()));
  std::string out(1, static_cast<char>(kCompressed));
  crdt::codec::put_varint(&out, bytes.size());
  const size_t at = out.size();
  out.resize(at + cap);
  // Level 1: the writer thread compresses inside the commit path; speed matters more than the
  // last few percent.
  if (compress2(reinterpret_cast<Bytef*>(&out[at]), &cap, reinterpret_cast<const Bytef*>(bytes.data()),
                static_cast<uLong>(bytes.size()), 1) != Z_OK ||
      at + cap > bytes.size() * 9 / 10) {
    return std::string(bytes);
  }
  out.resize(at + cap);
  return out;
}

crdt::Result<std::string> unpack_blob(std::string_view stored) {
  if (stored.empty() || static_cast<unsigned char>(stored[0]) != kCompressed) return std::string(stored);
  uint64_t len = 0;
  crdt::codec::VarintReader r(stored.substr(1));
  if (!r.read(&len)) return crdt::Status::Corruption("compressed blob: bad length");
  const size_t at = stored.size() - r.remaining();
  if (len > kMaxBlob) return crdt::Status::Corruption("compressed blob claims " + std::to_string(len) + " bytes");
  std::string out(len, '\0');
  uLongf got = static_cast<uLongf>(len);
  const int rc = uncompress(reinterpret_cast<Bytef*>(out.data()), &got, reinterpret_cast<const Bytef*>(stored.data() + at),
                            static_cast<uLong>(stored.size() - at));
  if (rc != Z_OK || got != len) return crdt::Status::Corruption("compressed blob does not inflate (zlib " + std::to_string(rc) + ")");
  return out;
}

}  // namespace tandem::storage
