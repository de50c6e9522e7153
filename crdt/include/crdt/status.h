// Status and Result<T>: how every expected failure in Tandem is reported.
//
// A Status is ok or carries a code and a human-readable message. Functions that can fail on
// input they do not control (bytes from a socket or a file, positions from a user) return one;
// they never throw and never assert on such input. `assert` is kept for programmer errors.
//
// Thread safety: values; no shared state.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tandem::crdt {

class [[nodiscard]] Status {
 public:
  enum class Code : unsigned char {
    kOk = 0,
    kInvalidArgument,   // the caller passed something malformed (bad UTF-8, bad agent name)
    kOutOfRange,        // a position or length past the end of the document
    kNotFound,          // no such document (storage, server)
    kFailedPrecondition,  // what an operation depends on never arrived (held operations past the bound)
    kCorruption,        // bytes that do not decode (truncated, bad tag, inconsistent)
    kResourceExhausted, // a limit was reached (held ops, document size, container sizes)
    kNotSupported,      // a format version this build does not read
    kIOError,           // the operating system refused (used by storage and net)
    kInternal,          // an invariant check failed: a bug in Tandem
    kAlreadyExists,     // a name that must be unique is taken (storage: named versions)
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string_view msg) { return Status(Code::kInvalidArgument, msg); }
  static Status OutOfRange(std::string_view msg) { return Status(Code::kOutOfRange, msg); }
  static Status NotFound(std::string_view msg) { return Status(Code::kNotFound, msg); }
  static Status FailedPrecondition(std::string_view msg) { return Status(Code::kFailedPrecondition, msg); }
  static Status Corruption(std::string_view msg) { return Status(Code::kCorruption, msg); }
  static Status ResourceExhausted(std::string_view msg) { return Status(Code::kResourceExhausted, msg); }
  static Status NotSupported(std::string_view msg) { return Status(Code::kNotSupported, msg); }
  static Status IOError(std::string_view msg) { return Status(Code::kIOError, msg); }
  static Status Internal(std::string_view msg) { return Status(Code::kInternal, msg); }
  static Status AlreadyExists(std::string_view msg) { return Status(Code::kAlreadyExists, msg); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  // "Corruption: bad varint" (or "OK").
  std::string ToString() const;
  static const char* CodeName(Code code);

  // Returns a copy whose message is prefixed with `context: ` (OK stays OK; inline, as hot
  // paths check their inputs with it).
  Status WithContext(std::string_view context) const { return ok() ? Status() : Prefixed(context); }

  bool operator==(const Status& o) const { return code_ == o.code_ && msg_ == o.msg_; }

 private:
  Status Prefixed(std::string_view context) const;
  Status(Code code, std::string_view msg) : code_(code), msg_(msg) {}
  Code code_ = Code::kOk;
  std::string msg_;
};

// A value or the Status saying why there is none. REQUIRES: constructed from a non-ok Status
// when there is no value.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace tandem::crdt

#define TANDEM_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::tandem::crdt::Status _st = (expr);          \
    if (!_st.ok()) return _st;                    \
  } while (0)
