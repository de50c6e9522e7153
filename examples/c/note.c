/* A note kept on a Tandem server, from C: appends a line, waits until the server holds it
 * durably, and prints the note. Remote changes are reported as they arrive.
 *   note URL LINE          e.g. note ws://127.0.0.1:8080/ws/shopping-list "eggs"
 * Build against the installed library: cc note.c $(pkg-config --cflags --libs tandem) */
#include <stdio.h>
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

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: note URL LINE\n");
    return 2;
  }
  tandem_client_options options;
  memset(&options, 0, sizeof options);
  options.url = argv[1];
  tandem_client_callbacks callbacks;
  memset(&callbacks, 0, sizeof callbacks);
  callbacks.on_change = on_change;
  callbacks.on_error = on_error;
  tandem_error* err = NULL;
  tandem_client* note = tandem_client_open(&options, &callbacks, NULL, &err);
  if (!note) {
    fprintf(stderr, "cannot open %s: %s\n", argv[1], tandem_error_message(err));
    tandem_error_free(err);
    return 1;
  }
  /* Catch up first, so that the line goes at the end of what the server holds. */
  if (!tandem_client_wait_synced(note, 10000)) fprintf(stderr, "not synced yet; the line is kept and sent later\n");
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
  text = tandem_client_text(note, &len);
  printf("%s as %s; %s\n---\n%s---\n", synced ? "stored" : "NOT stored yet", tandem_client_agent(note),
         synced ? "the server holds the line" : "it is sent when the server is back", text);
  tandem_string_free(text);
  tandem_client_free(note);
  return synced ? 0 : 1;
}
