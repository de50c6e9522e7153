// The input scripts a scenario of 2 to 5 replicas: who types or deletes what where, which
// replica's new operations are sent, and which messages are delivered, duplicated, delivered
// out of order or dropped (dropped ones are sent again at the end), or all at once as a group.
// Afterwards every replica must hold the same text, version, marks and blocks; a divergence
// aborts. Two more replicas take every message, one at a time and in groups, and must agree. The first replica's
// history (crdt/history.h) must give, at each point it passed, the text it held there.
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include "crdt/batch.h"
#include "crdt/codec.h"
#include "crdt/doc.h"
#include "crdt/history.h"
#include "fuzz_check.h"

using namespace tandem::crdt;

namespace {

using tandem::fuzz::require;

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t next() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  const int replicas = 2 + in.next() % 4;
  std::vector<Doc> docs;
  std::vector<Version> sent(replicas);
  std::vector<std::deque<std::string>> inbox(replicas);
  for (int i = 0; i < replicas; ++i) docs.emplace_back(std::string(1, static_cast<char>('a' + i)));
  static const char* kText[] = {"x", "yz", "👋", "世界", "e\u0301", "\n", "hello "};
  std::vector<std::string> all;  // every message ever sent, for the final delivery
  std::vector<std::pair<uint64_t, std::string>> seen0;  // the first replica's events and text
  while (in.n > 0) {
    if (seen0.empty() || seen0.back().first != docs[0].num_events()) seen0.emplace_back(docs[0].num_events(), docs[0].text());
    const uint8_t op = in.next();
    const int who = in.next() % replicas;
    Doc& d = docs[who];
    switch (op % 7) {
      case 0:
      case 1: {  // type
        const uint32_t pos = d.length() == 0 ? 0 : in.next() % (d.length() + 1);
        require(d.insert(pos, kText[in.next() % 7]).ok());
        break;
      }
      case 2: {  // delete
        if (d.length() == 0) break;
        const uint32_t pos = in.next() % d.length();
        const uint32_t len = 1 + in.next() % std::min<uint32_t>(4, d.length() - pos);
        require(d.remove(pos, len).ok());
        break;
      }
      case 5: {  // mark or unmark
        if (d.length() == 0) break;
        static const char* kMarks[][2] = {{"bold", "true"}, {"italic", "true"}, {"link", "/a"}, {"link", "https://b/"},
                                          {"comment", "c1"}, {"comment", "c2"}};
        const auto& m = kMarks[in.next() % 6];
        const uint32_t pos = in.next() % d.length();
        const uint32_t len = 1 + in.next() % (d.length() - pos);
        const bool off = in.next() % 3 == 0;
        const std::string_view name = m[0];
        require((off ? d.unmark(pos, len, name, name == "comment" ? m[1] : "") : d.mark(pos, len, name, m[1])).ok());
        break;
      }
      case 6: {  // a block's type
        static const char* kBlocks[][2] = {{"paragraph", ""}, {"heading", "2"}, {"bullet", "1"}, {"quote", ""}};
        const auto& b = kBlocks[in.next() % 4];
        require(d.set_block(in.next() % (d.length() + 1), b[0], b[1]).ok());
        break;
      }
      case 3: {  // send what is new since the last send, to everyone
        const std::string msg = codec::encode_ops(d.ops_since(sent[who]));
        sent[who] = d.version();
        all.push_back(msg);
        for (int j = 0; j < replicas; ++j) {
          if (j != who) inbox[j].push_back(msg);
        }
        break;
      }
      case 4: {  // deliver one message: oldest, newest (out of order), duplicate, or drop; or all
        auto& q = inbox[who];
        if (q.empty()) break;
        const uint8_t how = in.next() % 5;
        if (how == 4) {  // everything waiting, as one group (Doc::integrate_group)
          std::vector<Batch> batches;
          for (const auto& msg : q) {
            auto b = codec::decode_batch(msg);
            require(b.ok());
            batches.push_back(std::move(*b));
          }
          q.clear();
          std::vector<const Batch*> group;
          for (const auto& b : batches) group.push_back(&b);
          for (const auto& st : d.integrate_group(group)) require(st.ok());
          break;
        }
        const std::string msg = how == 1 ? q.back() : q.front();
        if (how == 1) q.pop_back();
        else if (how != 2) q.pop_front();
        if (how == 3) break;  // dropped: the final delivery brings it
        auto b = codec::decode_ops(msg);
        require(b.ok());
        require(d.apply(*b).ok());
        break;
      }
    }
  }
  // Every message as it was sent, to two more replicas: one integrates them one at a time, the
  // other in groups of 1 to 5. They must end the same in every respect, every batch taken.
  {
    std::vector<Batch> batches;
    for (const auto& msg : all) {
      auto b = codec::decode_batch(msg);
      require(b.ok());
      batches.push_back(std::move(*b));
    }
    Doc one("y"), grouped("y");
    for (size_t i = 0, k = 0; i < batches.size(); ++k) {
      const size_t n = std::min(batches.size() - i, 1 + k % 5);
      std::vector<const Batch*> group;
      for (size_t j = i; j < i + n; ++j) {
        require(one.integrate(batches[j]).ok());
        group.push_back(&batches[j]);
      }
      for (const auto& st : grouped.integrate_group(group)) require(st.ok());
      require(grouped.text() == one.text() && grouped.pending_events() == one.pending_events());
      i += n;
    }
    require(grouped.version() == one.version());
    require(codec::save(grouped) == codec::save(one));
    require(grouped.check_invariants().ok());
  }
  // Everything to everyone, then everyone's whole history to everyone.
  for (int i = 0; i < replicas; ++i) all.push_back(codec::encode_ops(docs[i].ops_since(Version{})));
  for (int j = 0; j < replicas; ++j) {
    for (const auto& msg : all) {
      auto b = codec::decode_ops(msg);
      require(b.ok() && docs[j].apply(*b).ok());
    }
  }
  const auto spans = docs[0].spans();
  const auto blocks = docs[0].blocks();
  for (int j = 1; j < replicas; ++j) {
    require(docs[j].spans() == spans);
    require(docs[j].blocks() == blocks);
    require(docs[j].text() == docs[0].text());
    require(docs[j].version() == docs[0].version());
    require(docs[j].pending_events() == 0);
  }
  require(docs[0].check_invariants().ok());
  seen0.emplace_back(docs[0].num_events(), docs[0].text());
  auto h = docs[0].history();
  require(h.ok() && h->events() == docs[0].num_events());
  for (const auto& [n, text] : seen0) require(h->text_at(n).ok() && *h->text_at(n) == text);
  auto diff = h->diff(seen0.front().first, h->events());
  std::string now;
  for (const auto& r : *diff) now += r.kind == DiffRun::kDeleted ? "" : r.text;
  require(diff.ok() && now == docs[0].text());
  auto loaded = codec::load(codec::save(docs[0]), "z");
  require(loaded.ok() && loaded->spans() == spans && loaded->blocks() == blocks);
  return 0;
}
