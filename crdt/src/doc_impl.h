// The inside of a Doc, shared by doc.cc and snapshot.cc.
#pragma once

#include <string>
#include <vector>

#include "crdt/doc.h"
#include "oplog.h"
#include "rope.h"

namespace tandem::crdt {

struct Doc::Impl {
  std::string agent_name;
  uint32_t agent = internal::kNoLV;  // interned on the first local edit
  DocLimits limits;
  internal::OpLog log;
  internal::Rope rope;
  internal::Frontier frontier;  // the events with no children: the document's version
  Version version;
  std::vector<OpRun> pending;   // runs waiting for their dependencies
  uint64_t pending_events = 0;

  uint32_t local_agent() {
    if (agent == internal::kNoLV) agent = log.intern_agent(agent_name);
    return agent;
  }
};

}  // namespace tandem::crdt
