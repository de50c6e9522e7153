/* A note kept on a Tandem server, from C: appends a line, waits until the server holds it
 * durably, and prints the note. Remote changes are reported as they arrive.
 *   note URL LINE [STATE]   e.g. note ws://127.0.0.1:8080/ws/shopping-list "eggs" note.state
 * With STATE, the client goes on from that file (its agent and replica) and saves itself there at
 * the end: a line the server could not take yet (it was down) is kept there and sent the next run.
 * Build against the installed library: cc note.c $(pkg-config --cflags --libs tandem) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/tandem.h"

static void on_change(void* user, const tandem_patch* patches, size_t count) {
  (void)user;
  for (size_t i = 0; i < count; ++i) {
    printf("remote: at %u removed %u, inserted \"%.*s\"\n", patches[i].pos, patches[i].deleted,
           (int)patches[i].inserted_len, patches[i].inserted);
  }
}

static void on_error(void* user, uint16_t code, const char* message) {
  (void)user;
  fprintf(stderr, "server error %u: %s\n", code, message);
}

/* The whole file, or NULL when there is none. */
static uint8_t* read_file(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t* buf = NULL;
  size_t cap = 0;
  *len = 0;
  for (;;) {
    if (*len == cap) {
      cap = cap ? cap * 2 : 65536;
      uint8_t* more = realloc(buf, cap);
      if (!more) break;
      buf = more;
    }
    const size_t n = fread(buf + *len, 1, cap - *len, f);
    if (n == 0) break;
    *len += n;
  }
  fclose(f);
  return buf;
}

static int save_state(tandem_client* note, const char* path) {
  uint8_t* bytes = NULL;
  size_t len = 0;
  tandem_error* err = NULL;
  if (tandem_client_save(note, &bytes, &len, &err) != TANDEM_OK) {
    fprintf(stderr, "cannot save the client: %s\n", tandem_error_message(err));
    tandem_error_free(err);
    return 0;
  }
  FILE* f = fopen(path, "wb");
  const int ok = f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0;
  if (!ok) fprintf(stderr, "cannot write %s\n", path);
  tandem_bytes_free(bytes);
  return ok;
}

/* When the server refused the client for good: says why and returns 1. */
static int refused(tandem_client* note) {
  uint16_t code = 0;
  char* why = tandem_client_refusal(note, &code);
  if (!why) return 0;
  fprintf(stderr, "the server refused this client (%u): %s\n", code, why);
  tandem_string_free(why);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: note URL LINE [STATE]\n");
    return 2;
  }
  const char* state_path = argc == 4 ? argv[3] : NULL;
  tandem_client_options options;
  memset(&options, 0, sizeof options);
  options.url = argv[1];
  tandem_client_callbacks callbacks;
  memset(&callbacks, 0, sizeof callbacks);
  callbacks.on_change = on_change;
  callbacks.on_error = on_error;
  tandem_error* err = NULL;
  size_t state_len = 0;
  uint8_t* state = state_path ? read_file(state_path, &state_len) : NULL;
  tandem_client* note = state ? tandem_client_restore(&options, state, state_len, &callbacks, NULL, &err)
                              : tandem_client_open(&options, &callbacks, NULL, &err);
  free(state);
  if (!note) {
    fprintf(stderr, "cannot open %s: %s\n", argv[1], tandem_error_message(err));
    tandem_error_free(err);
    return 1;
  }
  /* Catch up first, so that the line goes at the end of what the server holds. */
  if (!tandem_client_wait_synced(note, 5000)) {
    if (refused(note)) {
      tandem_client_free(note);
      return 1;
    }
    fprintf(stderr, "not synced yet; the line goes at the end of what this client holds\n");
  }
  size_t len = 0;
  char line[4096];
  snprintf(line, sizeof line, "%s\n", argv[2]);
  /* The end of the note in code points. */
  uint32_t end = 0;
  char* text = tandem_client_text(note, &len);
  for (size_t i = 0; i < len; ++i) end += ((unsigned char)text[i] & 0xC0) != 0x80;
  tandem_string_free(text);
  if (tandem_client_insert(note, end, line, strlen(line), &err) != TANDEM_OK) {
    fprintf(stderr, "cannot add the line: %s\n", tandem_error_message(err));
    tandem_error_free(err);
    tandem_client_free(note);
    return 1;
  }
  const int synced = tandem_client_wait_synced(note, 10000);
  const int saved = state_path && save_state(note, state_path);
  int status = 0;
  if (synced) {
    text = tandem_client_text(note, &len);
    printf("stored as %s; the server holds the line\n---\n%s---\n", tandem_client_agent(note), text);
    tandem_string_free(text);
  } else if (refused(note)) {
    status = 1;
  } else if (saved) {
    printf("NOT stored yet as %s: the server did not answer; the line is kept in %s and sent when you run this again with it\n",
           tandem_client_agent(note), state_path);
    status = 1;
  } else {
    printf("NOT stored: the server did not answer, and the line is lost with this process (give a STATE file to keep it)\n");
    status = 1;
  }
  tandem_client_free(note);
  return status;
}
