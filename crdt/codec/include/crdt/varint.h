// LEB128 varints and zigzag signed integers: the snapshot's columns (FORMAT.md), and the store's
// journal rows and compressed blobs. The one varint codec of the project. The reader is
// bounds-checked: it never reads past its buffer and rejects varints longer than the type they
// decode into.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::crdt::codec {

inline void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

inline uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// base plus the zigzag-encoded delta z, into *out if the sum lies in [0, limit]. Computed without
// signed arithmetic: a hostile delta near 2^63 must be refused, not overflow.
[[gnu::always_inline]] inline bool add_zigzag(uint64_t base, uint64_t z, uint64_t limit, uint64_t* out) {
  const uint64_t magnitude = z >> 1;  // of a negative delta: magnitude + 1
  if (z & 1) {
    if (magnitude >= base) return false;
    *out = base - magnitude - 1;
  } else {
    if (base > limit || magnitude > limit - base) return false;
    *out = base + magnitude;
  }
  return *out <= limit;
}

class VarintReader {
 public:
  explicit VarintReader(std::string_view bytes) : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}
  // False on truncation or a value over 64 bits.
  [[gnu::always_inline]] bool read(uint64_t* v) {
    if (p_ != end_ && *p_ < 0x80) {  // most values fit in one or two bytes: keep those paths inlined
      *v = *p_++;
      return true;
    }
    if (end_ - p_ >= 2 && p_[1] < 0x80) {
      *v = (p_[0] & 0x7Fu) | (uint64_t{p_[1]} << 7);
      p_ += 2;
      return true;
    }
    return read_long(v);
  }
  // read(), for columns whose values take one or two bytes in no predictable order: those two
  // lengths are told apart without a branch (a mispredicted one costs more than the arithmetic).
  [[gnu::always_inline]] bool read_short(uint64_t* v) {
    if (end_ - p_ >= 2) [[likely]] {
      const uint32_t b0 = p_[0], b1 = p_[1], more = b0 >> 7;  // more: a second byte follows
      if ((b1 & (more << 7)) == 0) [[likely]] {                 // else a third one does
        *v = (b0 & 0x7Fu) | ((b1 << 7) & (0u - more));
        p_ += 1 + more;
        return true;
      }
    }
    return read(v);
  }
  bool read32(uint32_t* v) {
    uint64_t x;
    if (!read(&x) || x > UINT32_MAX) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool done() const { return p_ == end_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  // What is left to read (the bytes after the varints read so far).
  std::string_view rest() const { return {reinterpret_cast<const char*>(p_), remaining()}; }
  // Where the next read starts, and a return there (to a place mark() gave).
  const uint8_t* mark() const { return p_; }
  void reset(const uint8_t* at) { p_ = at; }

 private:
  [[gnu::noinline]] bool read_long(uint64_t* v) {  // so that read() stays small enough to inline
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      if (shift == 63 && b > 1) return false;
      result |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) {
        *v = result;
        return true;
      }
    }
    return false;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace tandem::crdt::codec
