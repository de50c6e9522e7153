// How the store keeps its larger blobs: zlib-compressed when that saves at least a tenth.
//
// A stored blob is either the encoded bytes as they are (an op batch or a snapshot, both a
// msgpack array, so their first byte is 0x90..0x9f or 0xdc/0xdd), or the byte 0x01, the original
// length as a LEB128 varint, and a zlib stream. Text compresses about threefold, and both the
// log's inserted text and a snapshot's visible text are mostly text.
#pragma once

#include <string>
#include <string_view>

#include "crdt/status.h"

namespace tandem::storage {

std::string pack_blob(std::string_view bytes);
crdt::Result<std::string> unpack_blob(std::string_view stored);

}  // namespace tandem::storage
