// note-sync: the smallest useful Tandem client, for note-app developers to read in one sitting.
//
// It opens one document on a Tandem server, appends every line you type to it, and prints every
// change other people make, as it arrives. Edits made while the server is unreachable are kept
// and sent when it comes back; nothing here has to handle that.
//
//   tandem serve &                                   # a server on 127.0.0.1:8080
//   note-sync ws://127.0.0.1:8080/ws/shopping-list   # in two terminals: type in one, watch the other
//
// Lines starting with ':' are commands: :show prints the whole note, :quit leaves (after waiting
// up to 5 s for the server to confirm every edit is stored). The same, without a terminal:
//   printf 'milk\neggs\n:quit\n' | note-sync ws://127.0.0.1:8080/ws/shopping-list
#include <cstdio>
#include <iostream>
#include <string>

#include "net/client.h"

using tandem::net::Client;
using tandem::net::ClientOptions;
using tandem::net::ClientState;

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]).rfind("ws", 0) != 0) {
    std::fprintf(stderr, "usage: note-sync ws://HOST:PORT/ws/<doc-id> [token]\n");
    return 2;
  }
  ClientOptions options;
  options.url = argv[1];
  if (argc > 2) options.token = argv[2];  // from `tandem token`, when the server asks for one

  Client note(options);

  // Callbacks run on the client's network thread; printing is all this one does.
  note.on_change([](const std::vector<tandem::crdt::Patch>& patches) {
    for (const auto& p : patches) {
      if (p.deleted > 0) std::printf("  [remote] deleted %u characters at %u\n", p.deleted, p.pos);
      if (!p.inserted.empty()) std::printf("  [remote] inserted \"%s\" at %u\n", p.inserted.c_str(), p.pos);
    }
    std::fflush(stdout);
  });
  note.on_state([](ClientState s) { std::printf("  [%s]\n", tandem::net::ClientStateName(s)); });
  note.on_error([](uint16_t code, const std::string& message) {
    std::fprintf(stderr, "  [server error %u] %s\n", code, message.c_str());
  });

  note.start();
  // Not required: edits work offline too. Waiting shows the note as the server has it.
  if (note.wait_synced(std::chrono::seconds(5))) {
    std::printf("%s as %s; it holds:\n%s\n", options.url.c_str(), note.agent().c_str(), note.text().c_str());
  } else {
    std::printf("%s is not reachable yet; editing offline as %s\n", options.url.c_str(), note.agent().c_str());
  }

  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == ":quit") break;
    if (line == ":show") {
      std::printf("%s\n", note.text().c_str());
      continue;
    }
    // Positions count Unicode code points; length() is the note's length in them.
    auto st = note.insert(note.length(), line + "\n");
    if (!st.ok()) std::fprintf(stderr, "  [not added] %s\n", st.ToString().c_str());
  }

  if (!note.wait_synced(std::chrono::seconds(5))) {
    std::fprintf(stderr, "not every edit is confirmed by the server yet (%llu operations); they are lost if you quit now\n",
                 static_cast<unsigned long long>(note.unacknowledged()));
    return 1;
  }
  std::printf("all edits stored on the server\n");
  return 0;
}
