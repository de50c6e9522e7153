/* libtandem: Tandem's engine and sync client for any language that can call C (C11).
 *
 * Two handles: tandem_doc, one replica of a text document (edit, merge remote operations, save and
 * load); tandem_client, a document on a Tandem server kept in sync in the background (its own I/O
 * thread; reconnects with backoff; edits made offline are sent when it is back).
 *
 * Contract for every call:
 *  - Failure is a tandem_status other than TANDEM_OK (or NULL for constructors), plus, when `err`
 *    is not NULL, *err set to a new tandem_error the caller frees with tandem_error_free(). Bad
 *    input (invalid UTF-8, positions past the end, bytes that do not decode, NULL handles) is such
 *    a failure: nothing aborts the host process.
 *  - Memory: anything the library returns through an out-pointer (text, bytes, patch arrays) is the
 *    caller's, freed with the matching tandem_*_free(); `const char*` parameters are only read
 *    during the call. Handles are freed with their own _free(), which accepts NULL.
 *  - Text is UTF-8. Positions and lengths count Unicode code points, or UTF-16 code units in the
 *    _utf16 calls (what JavaScript, Java, Kotlin, Swift's NSString and C# count).
 *  - Threads: a tandem_doc is used by one thread at a time. A tandem_client may be called from any
 *    thread (an app's UI thread included); its callbacks run on its I/O thread, must return
 *    quickly and must not call tandem_client_free() or tandem_client_wait_synced().
 */
#ifndef TANDEM_TANDEM_H
#define TANDEM_TANDEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TANDEM_API __attribute__((visibility("default")))
#else
#define TANDEM_API
#endif

/* The version of this interface; libtandem.so.0 keeps it compatible while it grows. */
#define TANDEM_API_VERSION 4
TANDEM_API int tandem_api_version(void);

typedef enum tandem_status {
  TANDEM_OK = 0,
  TANDEM_INVALID_ARGUMENT = 1,    /* malformed input: bad UTF-8 or agent name, NULL where not allowed */
  TANDEM_OUT_OF_RANGE = 2,        /* a position or length past the end of the document */
  TANDEM_NOT_FOUND = 3,
  TANDEM_FAILED_PRECONDITION = 4, /* held operations past their bound */
  TANDEM_CORRUPTION = 5,          /* bytes that do not decode */
  TANDEM_RESOURCE_EXHAUSTED = 6,  /* a size limit */
  TANDEM_NOT_SUPPORTED = 7,       /* a format version this build does not read */
  TANDEM_IO_ERROR = 8,
  TANDEM_INTERNAL = 9,            /* a bug in Tandem */
  TANDEM_ALREADY_EXISTS = 10      /* a name that must be unique is taken */
} tandem_status;

typedef struct tandem_error tandem_error;
TANDEM_API tandem_status tandem_error_code(const tandem_error* err);
TANDEM_API const char* tandem_error_message(const tandem_error* err); /* valid until tandem_error_free */
TANDEM_API void tandem_error_free(tandem_error* err);

/* Text and bytes the library returned. */
TANDEM_API void tandem_string_free(char* s);
TANDEM_API void tandem_bytes_free(uint8_t* b);

/* One change to the visible text: at `pos`, `deleted` characters were removed, then `inserted`
 * (UTF-8, `inserted_len` bytes, not NUL-terminated) was inserted. Patches in an array apply one
 * after another, each to the text the one before left. */
typedef struct tandem_patch {
  uint32_t pos;
  uint32_t deleted;
  const char* inserted;
  size_t inserted_len;
  uint32_t pos_utf16;
  uint32_t deleted_utf16;
  uint32_t inserted_utf16;
} tandem_patch;
TANDEM_API void tandem_patches_free(tandem_patch* patches, size_t count);

/* ---- A document replica ---------------------------------------------------------------------- */

typedef struct tandem_doc tandem_doc;

/* `agent` names this replica's edits: 1 to 64 bytes of UTF-8, unique among the document's writers. */
TANDEM_API tandem_doc* tandem_doc_new(const char* agent, tandem_error** err);
TANDEM_API void tandem_doc_free(tandem_doc* doc);

TANDEM_API tandem_status tandem_doc_insert(tandem_doc* doc, uint32_t pos, const char* text, size_t text_len,
                                           tandem_error** err);
TANDEM_API tandem_status tandem_doc_delete(tandem_doc* doc, uint32_t pos, uint32_t len, tandem_error** err);
TANDEM_API tandem_status tandem_doc_insert_utf16(tandem_doc* doc, uint32_t pos_utf16, const char* text, size_t text_len,
                                                 tandem_error** err);
TANDEM_API tandem_status tandem_doc_delete_utf16(tandem_doc* doc, uint32_t pos_utf16, uint32_t len_utf16,
                                                 tandem_error** err);

/* The text, NUL-terminated (*len, if not NULL, gets its length in bytes); free with tandem_string_free. */
TANDEM_API char* tandem_doc_text(const tandem_doc* doc, size_t* len);
TANDEM_API uint32_t tandem_doc_length(const tandem_doc* doc);       /* code points; 0 for NULL */
TANDEM_API uint32_t tandem_doc_length_utf16(const tandem_doc* doc); /* UTF-16 code units */

/* The version this replica holds, encoded (what a peer passes to tandem_doc_encode_since). An
 * empty version is 1 byte. Free *out with tandem_bytes_free. */
TANDEM_API tandem_status tandem_doc_version(const tandem_doc* doc, uint8_t** out, size_t* out_len, tandem_error** err);
/* The operations a peer at `version` lacks (version NULL/0 bytes: everything), encoded. */
TANDEM_API tandem_status tandem_doc_encode_since(const tandem_doc* doc, const uint8_t* version, size_t version_len,
                                                 uint8_t** out, size_t* out_len, tandem_error** err);
/* Merges encoded operations from a peer; *patches (may be NULL) receives the changes to the text,
 * freed with tandem_patches_free. On failure the replica is unchanged. */
TANDEM_API tandem_status tandem_doc_apply(tandem_doc* doc, const uint8_t* ops, size_t ops_len, tandem_patch** patches,
                                          size_t* patch_count, tandem_error** err);

/* Rich text (since API version 3; crdt/include/crdt/format.h has the rules). Positions in code
 * points. mark: characters [pos, pos + len) get mark `name` ("bold", "italic", "underline",
 * "strike", "code" with value "true"; "link" with its href; "comment" with its id). unmark takes it
 * off (`value`: the comment's id, else NULL). set_block: the block holding pos becomes `type`
 * ("paragraph", "heading" with "1".."6", "bullet" and "ordered" with a depth "0".."7", "quote",
 * "code" with a language; `value` NULL for none). TANDEM_INVALID_ARGUMENT for a name or value the
 * rules refuse, TANDEM_OUT_OF_RANGE past the end. */
TANDEM_API tandem_status tandem_doc_mark(tandem_doc* doc, uint32_t pos, uint32_t len, const char* name, const char* value,
                                         tandem_error** err);
TANDEM_API tandem_status tandem_doc_unmark(tandem_doc* doc, uint32_t pos, uint32_t len, const char* name,
                                           const char* value, tandem_error** err);
TANDEM_API tandem_status tandem_doc_set_block(tandem_doc* doc, uint32_t pos, const char* type, const char* value,
                                              tandem_error** err);
/* The formatting as JSON, NUL-terminated, free with tandem_string_free:
 * {"spans": [{"from": F, "to": T, "marks": {"bold": true, "link": "...", "comment": ["id", ...]}}, ...],
 *  "blocks": [{"at": P, "type": "heading", "value": "2"}, ...]}: the stretches that carry marks and
 * the blocks that are not paragraphs, in code points. */
TANDEM_API char* tandem_doc_formats_json(const tandem_doc* doc, size_t* len);

/* History: the replica's own past, every event it holds, deleted text included (a replica has the
 * text of what was deleted when it typed it, received it with its text or loaded a server's log;
 * characters that reached it already deleted, without their text, read as U+FFFD). A point is a
 * count of events in the replica's order: 0 is the empty document, tandem_doc_events() now; a
 * replica rebuilt from a server's log in log order (`tandem replay`) counts as the server's ?at=
 * does. Answers as the HTTP API's /blame and /diff, without times (a replica has none); JSON,
 * NUL-terminated, free with tandem_string_free:
 *   blame: {"events": N, "length": L, "spans": [{"from": F, "to": T, "agent": "..."}, ...]}
 *          (who inserted each stretch of the text at `at`, in code points)
 *   diff:  {"from": A, "to": B, "runs": [{"kind": "kept"|"inserted"|"deleted", "text": "...",
 *          "agents": ["...", ...]}, ...]} (the texts at A and B in document order)
 * A point past the end is TANDEM_OUT_OF_RANGE. The first read after the replica changed walks its
 * whole log once (milliseconds for a long document); later reads reuse that. */
TANDEM_API uint64_t tandem_doc_events(const tandem_doc* doc); /* 0 for NULL */
TANDEM_API char* tandem_doc_text_at(const tandem_doc* doc, uint64_t at, size_t* len, tandem_error** err);
TANDEM_API char* tandem_doc_blame_json(const tandem_doc* doc, uint64_t at, size_t* len, tandem_error** err);
TANDEM_API char* tandem_doc_diff_json(const tandem_doc* doc, uint64_t from, uint64_t to, size_t* len, tandem_error** err);

/* A snapshot of the whole replica, and a replica from one (checked: a corrupt snapshot fails). */
TANDEM_API tandem_status tandem_doc_save(const tandem_doc* doc, uint8_t** out, size_t* out_len, tandem_error** err);
TANDEM_API tandem_doc* tandem_doc_load(const uint8_t* snapshot, size_t len, const char* agent, tandem_error** err);

/* ---- A document on a server ------------------------------------------------------------------ */

typedef struct tandem_client tandem_client;

typedef enum tandem_client_state {
  TANDEM_OFFLINE = 0,
  TANDEM_CONNECTING = 1,
  TANDEM_CONNECTED = 2
} tandem_client_state;

/* Callbacks run on the client's I/O thread with the `user` pointer given to tandem_client_open. */
typedef struct tandem_client_callbacks {
  /* Remote changes to the text; the array is valid only during the call. */
  void (*on_change)(void* user, const tandem_patch* patches, size_t count);
  void (*on_state)(void* user, tandem_client_state state);
  /* The server's error before it closed the connection (docs/protocol.md section 8). */
  void (*on_error)(void* user, uint16_t code, const char* message);
  /* Another session's presence: its agent, name, and selection (-1: none) in code points. */
  void (*on_presence)(void* user, uint64_t session, const char* agent, const char* name, int64_t anchor, int64_t head);
  void (*on_leave)(void* user, uint64_t session);
} tandem_client_callbacks;

typedef struct tandem_client_options {
  const char* url;    /* ws://HOST:PORT/ws/<doc-id> or wss://...; required */
  const char* agent;  /* NULL: "client-<random>", or "<token subject>/<random>" with a token */
  const char* token;  /* NULL when the server needs none */
  uint32_t min_backoff_ms; /* 0: 100 */
  uint32_t max_backoff_ms; /* 0: 10000 */
} tandem_client_options;

/* Starts connecting (and reconnecting) at once. `callbacks` is copied; any of its members may be NULL. */
TANDEM_API tandem_client* tandem_client_open(const tandem_client_options* options, const tandem_client_callbacks* callbacks,
                                             void* user, tandem_error** err);
/* Disconnects, stops the I/O thread, and frees. No callback runs after it returns. */
TANDEM_API void tandem_client_free(tandem_client* client);

/* Edits at positions in the text as the client holds it when the call runs (remote changes may
 * arrive between reading the text and editing: an app that edits from another thread's view of
 * the text should apply remote patches to that view first). The _utf16 calls convert through a
 * copy of the text: linear in its length. */
TANDEM_API tandem_status tandem_client_insert(tandem_client* client, uint32_t pos, const char* text, size_t text_len,
                                              tandem_error** err);
TANDEM_API tandem_status tandem_client_delete(tandem_client* client, uint32_t pos, uint32_t len, tandem_error** err);
TANDEM_API tandem_status tandem_client_insert_utf16(tandem_client* client, uint32_t pos_utf16, const char* text,
                                                    size_t text_len, tandem_error** err);
TANDEM_API tandem_status tandem_client_delete_utf16(tandem_client* client, uint32_t pos_utf16, uint32_t len_utf16,
                                                    tandem_error** err);
TANDEM_API char* tandem_client_text(const tandem_client* client, size_t* len); /* free with tandem_string_free */
/* As the tandem_doc_ calls of the same names, on the client's replica (since API version 3). */
TANDEM_API tandem_status tandem_client_mark(tandem_client* client, uint32_t pos, uint32_t len, const char* name,
                                            const char* value, tandem_error** err);
TANDEM_API tandem_status tandem_client_unmark(tandem_client* client, uint32_t pos, uint32_t len, const char* name,
                                              const char* value, tandem_error** err);
TANDEM_API tandem_status tandem_client_set_block(tandem_client* client, uint32_t pos, const char* type, const char* value,
                                                 tandem_error** err);
TANDEM_API char* tandem_client_formats_json(const tandem_client* client, size_t* len);
TANDEM_API tandem_client_state tandem_client_get_state(const tandem_client* client);
/* Own edits not yet acknowledged durable by the server. */
TANDEM_API uint64_t tandem_client_unsent(const tandem_client* client);
/* This replica's agent name, valid while the client lives. */
TANDEM_API const char* tandem_client_agent(const tandem_client* client);
/* Shows this session's name and selection (code points; -1: no cursor) to the others. */
TANDEM_API tandem_status tandem_client_set_presence(tandem_client* client, const char* name, int64_t anchor, int64_t head,
                                                    tandem_error** err);
/* Blocks until connected, caught up and every own edit is durable (1), or `timeout_ms` passed (0).
 * Returns 0 at once when the server refused the client for good (tandem_client_refusal says why). */
TANDEM_API int tandem_client_wait_synced(tandem_client* client, uint32_t timeout_ms);
/* Why the client stopped for good (the server refused it in a way another try cannot fix: a
 * token missing, expired or not granting the document (4401, 4403), the document deleted (4410),
 * ...; docs/protocol.md section 8), or NULL while it is connected or still trying. The message is
 * the caller's (tandem_string_free); *code, when `code` is not NULL, gets the error code (0: a bad
 * URL). Since API version 2. */
TANDEM_API char* tandem_client_refusal(const tandem_client* client, uint16_t* code);
/* A fresh access token for the next connections (e.g. a short-lived JWT the app renewed): when
 * connected the client reconnects with it at once; when it was refused for its token it tries
 * again. TANDEM_INVALID_ARGUMENT for a token of another subject than the client's agent. Since
 * API version 2. */
TANDEM_API tandem_status tandem_client_set_token(tandem_client* client, const char* token, tandem_error** err);
/* The replica and which of its own edits the server acknowledged, for tandem_client_restore in this
 * or a later process: edits made offline survive the app's restart. Free *out with
 * tandem_bytes_free. Since API version 2. */
TANDEM_API tandem_status tandem_client_save(const tandem_client* client, uint8_t** out, size_t* out_len, tandem_error** err);
/* As tandem_client_open, going on from tandem_client_save's bytes: the same replica, and own edits
 * the server had not acknowledged are sent when it connects. New edits are made as a new agent
 * (options->agent, or a fresh default name when NULL): a save may be older than what the client
 * sent before it stopped, and going on as the saved agent could give two edits one id.
 * TANDEM_CORRUPTION for bytes that are not a saved client, TANDEM_INVALID_ARGUMENT for an agent
 * that already wrote in it. Since API version 2. */
TANDEM_API tandem_client* tandem_client_restore(const tandem_client_options* options, const uint8_t* state,
                                                size_t state_len, const tandem_client_callbacks* callbacks, void* user,
                                                tandem_error** err);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_TANDEM_H */
