// The DocStore contract over the stores of one node: the in-memory one and SQLite's.
#include <catch2/catch.hpp>

#include "storage/store.h"
#include "store/memory.h"
#include "support/doc_store_contract.h"
#include "support/temp_dir.h"

TEST_CASE("doc store contract: the in-memory store", "[storage]") {
  auto s = tandem::store::make_memory_store();
  tandem::testing::check_doc_store_contract(*s, true);
}

TEST_CASE("doc store contract: SQLite", "[storage]") {
  tandem::testing::TempDir dir;
  tandem::storage::StoreOptions o;
  o.path = dir.file("t.db");
  auto s = tandem::storage::Store::open(o);
  REQUIRE(s.ok());
  tandem::testing::check_doc_store_contract(**s, true);
}
