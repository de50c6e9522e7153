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
// With --state FILE the client is kept in FILE when it quits, and goes on from it the next time:
// lines the server has not confirmed yet are sent then, even after the process ended.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "net/client.h"

using tandem::net::Client;
using tandem::net::ClientOptions;
using tandem::net::ClientState;

int main(int argc, char** argv) {
  ClientOptions options;
  std::string state_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--state" && i + 1 < argc) {
      state_file = argv[++i];
    } else if (options.url.empty() && a.rfind("ws", 0) == 0) {
      options.url = a;
    } else if (options.token.empty() && a.rfind("--", 0) != 0) {
      options.token = a;  // from `tandem token`, when the server asks for one
    } else {
      options.url.clear();
      break;
    }
  }
  if (options.url.empty()) {
    std::fprintf(stderr, "usage: note-sync ws://HOST:PORT/ws/<doc-id> [token] [--state FILE]\n");
    return 2;
  }

  std::unique_ptr<Client> client;
  std::ifstream saved(state_file, std::ios::binary);
  if (!state_file.empty() && saved) {
    const std::string bytes((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
    auto restored = Client::Restore(options, bytes);
    if (!restored.ok()) {
      std::fprintf(stderr, "cannot go on from %s: %s\n", state_file.c_str(), restored.status().message().c_str());
      return 1;
    }
    client = std::move(*restored);
  } else {
    client = std::make_unique<Client>(options);
  }
  Client& note = *client;

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
  } else if (auto why = note.refusal()) {
    std::fprintf(stderr, "the server refused this client: %s (error %u)\n", why->second.c_str(), why->first);
    return 1;
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
    if (!st.ok()) std::fprintf(stderr, "  [not added] %s\n", st.message().c_str());
  }

  const bool synced = note.wait_synced(std::chrono::seconds(5));
  if (!state_file.empty()) {
    std::ofstream out(state_file, std::ios::binary | std::ios::trunc);
    out << note.save();
    if (!out) std::fprintf(stderr, "cannot write %s\n", state_file.c_str());
  }
  if (synced) {
    std::printf("all edits stored on the server\n");
    return 0;
  }
  if (auto why = note.refusal()) {
    std::fprintf(stderr, "the server refused this client: %s (error %u)\n", why->second.c_str(), why->first);
  } else if (!state_file.empty()) {
    std::fprintf(stderr, "not every edit is confirmed by the server yet (%llu operations); they are kept in %s and sent "
                 "the next time note-sync runs with --state %s\n",
                 static_cast<unsigned long long>(note.unacknowledged()), state_file.c_str(), state_file.c_str());
  } else {
    std::fprintf(stderr, "not every edit is confirmed by the server yet (%llu operations); they are lost if you quit now "
                 "(--state FILE keeps them)\n",
                 static_cast<unsigned long long>(note.unacknowledged()));
  }
  return 1;
}
