/* The C API from C11, built with -Wall -Wextra -Wpedantic -Werror: two replicas editing, merging
 * through encoded bytes, UTF-16 positions, snapshots, and every kind of bad input failing with a
 * code and a message while the replicas stay as they were. Exits non-zero on the first failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/tandem.h"

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

static int text_is(const tandem_doc* d, const char* want) {
  size_t len = 0;
  char* t = tandem_doc_text(d, &len);
  int ok = t && len == strlen(want) && memcmp(t, want, len) == 0;
  if (!ok) fprintf(stderr, "text is \"%s\", want \"%s\"\n", t ? t : "(null)", want);
  tandem_string_free(t);
  return ok;
}

/* Sends what `to` lacks from `from`; returns the number of patches `to` reported. */
static size_t sync_docs(const tandem_doc* from, tandem_doc* to) {
  uint8_t *version = NULL, *ops = NULL;
  size_t version_len = 0, ops_len = 0, n = 0;
  tandem_patch* patches = NULL;
  CHECK(tandem_doc_version(to, &version, &version_len, NULL) == TANDEM_OK);
  CHECK(tandem_doc_encode_since(from, version, version_len, &ops, &ops_len, NULL) == TANDEM_OK);
  CHECK(tandem_doc_apply(to, ops, ops_len, &patches, &n, NULL) == TANDEM_OK);
  tandem_patches_free(patches, n);
  tandem_bytes_free(version);
  tandem_bytes_free(ops);
  return n;
}

int main(void) {
  tandem_error* err = NULL;
  CHECK(tandem_api_version() == TANDEM_API_VERSION);
  tandem_doc* a = tandem_doc_new("alice", &err);
  tandem_doc* b = tandem_doc_new("bob", &err);
  CHECK(a && b && err == NULL);

  CHECK(tandem_doc_insert(a, 0, "hello", 5, NULL) == TANDEM_OK);
  CHECK(sync_docs(a, b) == 1);
  CHECK(text_is(b, "hello"));
  /* Concurrent edits at both ends converge. */
  CHECK(tandem_doc_insert(a, 5, " world", 6, NULL) == TANDEM_OK);
  CHECK(tandem_doc_insert(b, 0, "\xe2\x86\x92 ", 4, NULL) == TANDEM_OK); /* "→ " */
  sync_docs(a, b);
  sync_docs(b, a);
  CHECK(text_is(a, "\xe2\x86\x92 hello world"));
  CHECK(text_is(b, "\xe2\x86\x92 hello world"));
  CHECK(tandem_doc_length(a) == 13);

  /* UTF-16: an emoji is two units; positions after it count them. */
  CHECK(tandem_doc_insert_utf16(a, 0, "\xf0\x9f\x98\x80", 4, NULL) == TANDEM_OK); /* 😀 */
  CHECK(tandem_doc_length_utf16(a) == 15 && tandem_doc_length(a) == 14);
  CHECK(tandem_doc_delete_utf16(a, 0, 2, NULL) == TANDEM_OK);
  CHECK(text_is(a, "\xe2\x86\x92 hello world"));
  CHECK(tandem_doc_insert_utf16(a, 0, "\xf0\x9f\x98\x80", 4, NULL) == TANDEM_OK);
  CHECK(tandem_doc_delete_utf16(a, 1, 1, &err) == TANDEM_INVALID_ARGUMENT); /* inside the pair */
  CHECK(err && tandem_error_code(err) == TANDEM_INVALID_ARGUMENT && strlen(tandem_error_message(err)) > 0);
  tandem_error_free(err);
  err = NULL;
  CHECK(tandem_doc_delete(a, 0, 1, NULL) == TANDEM_OK);

  /* Bad input fails with its own code and message; nothing changes. */
  CHECK(tandem_doc_insert(a, 99, "x", 1, &err) == TANDEM_OUT_OF_RANGE);
  CHECK(err && strlen(tandem_error_message(err)) > 0);
  tandem_error_free(err);
  err = NULL;
  CHECK(tandem_doc_insert(a, 0, "\xff", 1, &err) == TANDEM_INVALID_ARGUMENT);
  tandem_error_free(err);
  err = NULL;
  CHECK(tandem_doc_delete(a, 10, 50, NULL) == TANDEM_OUT_OF_RANGE);
  CHECK(tandem_doc_insert(NULL, 0, "x", 1, NULL) == TANDEM_INVALID_ARGUMENT);
  CHECK(tandem_doc_insert(a, 0, NULL, 3, NULL) == TANDEM_INVALID_ARGUMENT);
  CHECK(tandem_doc_new("", NULL) == NULL);
  CHECK(tandem_doc_new(NULL, NULL) == NULL);
  {
    const uint8_t junk[] = {0x93, 0x01, 0xff, 0x00};
    tandem_patch* patches = (tandem_patch*)1;
    size_t n = 7;
    CHECK(tandem_doc_apply(a, junk, sizeof junk, &patches, &n, &err) != TANDEM_OK);
    CHECK(err && tandem_error_code(err) != TANDEM_OK);
    CHECK(patches == NULL && n == 0);
    tandem_error_free(err);
    err = NULL;
    uint8_t* out = NULL;
    size_t out_len = 0;
    CHECK(tandem_doc_encode_since(a, junk, sizeof junk, &out, &out_len, &err) != TANDEM_OK);
    tandem_error_free(err);
    err = NULL;
    CHECK(tandem_doc_load(junk, sizeof junk, "carol", &err) == NULL && err != NULL);
    tandem_error_free(err);
    err = NULL;
  }
  CHECK(text_is(a, "\xe2\x86\x92 hello world"));

  /* A snapshot round trip. */
  {
    uint8_t* snap = NULL;
    size_t snap_len = 0;
    CHECK(tandem_doc_save(a, &snap, &snap_len, NULL) == TANDEM_OK && snap_len > 0);
    tandem_doc* c = tandem_doc_load(snap, snap_len, "carol", &err);
    CHECK(c != NULL);
    CHECK(text_is(c, "\xe2\x86\x92 hello world"));
    CHECK(tandem_doc_insert(c, 0, "!", 1, NULL) == TANDEM_OK);
    sync_docs(c, b);
    sync_docs(a, b);
    CHECK(text_is(b, "!\xe2\x86\x92 hello world"));
    tandem_doc_free(c);
    tandem_bytes_free(snap);
  }
  /* History: the text at any point, who wrote what, what changed; deleted text included. */
  {
    tandem_doc* h = tandem_doc_new("ann", NULL);
    tandem_doc* g = tandem_doc_new("bob", NULL);
    CHECK(tandem_doc_insert(h, 0, "hello world", 11, NULL) == TANDEM_OK); /* events 0..10 */
    sync_docs(h, g);
    CHECK(tandem_doc_delete(g, 0, 6, NULL) == TANDEM_OK); /* "world": 11..16 */
    sync_docs(g, h);
    CHECK(tandem_doc_insert(h, 5, "!", 1, NULL) == TANDEM_OK); /* "world!": 17 */
    CHECK(tandem_doc_events(h) == 18 && tandem_doc_events(NULL) == 0);
    size_t len = 0;
    char* t = tandem_doc_text_at(h, 11, &len, NULL);
    CHECK(t && len == 11 && strcmp(t, "hello world") == 0);
    tandem_string_free(t);
    char* b = tandem_doc_blame_json(h, 18, NULL, NULL);
    /* (Two spans: "world" and "!" are not consecutive events.) */
    CHECK(b && strcmp(b, "{\"events\":18,\"length\":6,\"spans\":[{\"from\":0,\"to\":5,\"agent\":\"ann\"},"
                         "{\"from\":5,\"to\":6,\"agent\":\"ann\"}]}") == 0);
    tandem_string_free(b);
    char* d = tandem_doc_diff_json(h, 11, 18, NULL, NULL);
    CHECK(d && strcmp(d, "{\"from\":11,\"to\":18,\"runs\":[{\"kind\":\"deleted\",\"text\":\"hello \",\"agents\":[\"bob\"]},"
                         "{\"kind\":\"kept\",\"text\":\"world\",\"agents\":[\"ann\"]},"
                         "{\"kind\":\"inserted\",\"text\":\"!\",\"agents\":[\"ann\"]}]}") == 0);
    tandem_string_free(d);
    /* A change after a read is seen by the next one. */
    CHECK(tandem_doc_insert(h, 0, "> ", 2, NULL) == TANDEM_OK);
    t = tandem_doc_text_at(h, tandem_doc_events(h), NULL, NULL);
    CHECK(t && strcmp(t, "> world!") == 0);
    tandem_string_free(t);
    /* Bad input: a clear error. */
    CHECK(tandem_doc_text_at(h, 21, NULL, &err) == NULL && tandem_error_code(err) == TANDEM_OUT_OF_RANGE);
    tandem_error_free(err);
    err = NULL;
    CHECK(tandem_doc_diff_json(h, 0, 99, NULL, &err) == NULL && tandem_error_code(err) == TANDEM_OUT_OF_RANGE);
    tandem_error_free(err);
    err = NULL;
    CHECK(tandem_doc_blame_json(NULL, 0, NULL, &err) == NULL && tandem_error_code(err) == TANDEM_INVALID_ARGUMENT);
    tandem_error_free(err);
    err = NULL;
    tandem_doc_free(h);
    tandem_doc_free(g);
  }
  /* NULL handles are harmless. */
  tandem_doc_free(NULL);
  tandem_client_free(NULL);
  tandem_error_free(NULL);
  CHECK(tandem_doc_length(NULL) == 0 && tandem_doc_text(NULL, NULL) == NULL);
  CHECK(tandem_client_open(NULL, NULL, NULL, &err) == NULL && tandem_error_code(err) == TANDEM_INVALID_ARGUMENT);
  tandem_error_free(err);
  err = NULL;
  {
    tandem_client_options o;
    memset(&o, 0, sizeof o);
    o.url = "http://not-a-websocket";
    CHECK(tandem_client_open(&o, NULL, NULL, &err) == NULL && tandem_error_code(err) == TANDEM_INVALID_ARGUMENT);
    tandem_error_free(err);
    err = NULL;
  }
  {
    /* A client's unsent edits survive it: saved, freed, restored (with no server reachable: port 9
     * on loopback refuses connections). */
    tandem_client_options o;
    memset(&o, 0, sizeof o);
    o.url = "ws://127.0.0.1:9/ws/notes";
    o.agent = "notes-app/phone";
    tandem_client* c = tandem_client_open(&o, NULL, NULL, &err);
    CHECK(c != NULL);
    CHECK(tandem_client_insert(c, 0, "offline \xf0\x9f\x93\x9d", 12, NULL) == TANDEM_OK);
    CHECK(tandem_client_unsent(c) == 9);
    char* why = tandem_client_refusal(c, NULL);
    CHECK(why == NULL); /* unreachable is not refused: it keeps trying */
    uint8_t* state = NULL;
    size_t state_len = 0;
    CHECK(tandem_client_save(c, &state, &state_len, NULL) == TANDEM_OK && state_len > 10);
    tandem_client_free(c);
    o.agent = NULL;
    tandem_client* r = tandem_client_restore(&o, state, state_len, NULL, NULL, &err);
    CHECK(r != NULL);
    /* A new agent: the saved one's edits are sent as they were, new ones never reuse its ids. */
    CHECK(strcmp(tandem_client_agent(r), "notes-app/phone") != 0);
    CHECK(tandem_client_unsent(r) == 9);
    size_t len = 0;
    char* t = tandem_client_text(r, &len);
    CHECK(t && len == 12 && memcmp(t, "offline \xf0\x9f\x93\x9d", 12) == 0);
    tandem_string_free(t);
    CHECK(tandem_client_set_token(r, NULL, &err) == TANDEM_INVALID_ARGUMENT);
    tandem_error_free(err);
    err = NULL;
    tandem_client_free(r);
    /* The saved agent's own name (it wrote already), and bytes that are not a saved client. */
    o.agent = "notes-app/phone";
    CHECK(tandem_client_restore(&o, state, state_len, NULL, NULL, &err) == NULL &&
          tandem_error_code(err) == TANDEM_INVALID_ARGUMENT);
    tandem_error_free(err);
    err = NULL;
    o.agent = NULL;
    CHECK(tandem_client_restore(&o, (const uint8_t*)"junk", 4, NULL, NULL, &err) == NULL &&
          tandem_error_code(err) == TANDEM_CORRUPTION);
    tandem_error_free(err);
    err = NULL;
    CHECK(tandem_client_restore(&o, NULL, 0, NULL, NULL, &err) == NULL && tandem_error_code(err) == TANDEM_INVALID_ARGUMENT);
    tandem_error_free(err);
    err = NULL;
    tandem_bytes_free(state);
  }
  tandem_doc_free(a);
  tandem_doc_free(b);
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("capi: all checks passed\n");
  return 0;
}
