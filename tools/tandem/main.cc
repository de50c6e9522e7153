// tandem: the command line. `tandem COMMAND --help` describes each command.
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "cli.h"

namespace {

const char kUsage[] =
    "usage: tandem COMMAND [options]   (tandem COMMAND --help for each)\n"
    "\n"
    "  serve     run the sync server and the editor\n"
    "  import    load an editing trace as a document's history\n"
    "  replay    rebuild a document as it was after N operations, or at a time\n"
    "  export    a document's text, or its history as JSON lines\n"
    "  history   a document's sessions: who edited, when, how much\n"
    "  blame     who wrote each stretch of a document's text, and when\n"
    "  diff      what changed in a document between two points\n"
    "  inspect   documents, sizes, snapshots, agents, and an integrity check\n"
    "  token     make an access token for a server run with --auth-secret\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  // Options that are switches (no value) for each command.
  const std::set<std::string> switches = cmd == "serve"                                          ? std::set<std::string>{"--quiet"}
                                         : cmd == "history" || cmd == "blame" || cmd == "diff" ? std::set<std::string>{"--json"}
                                                                                               : std::set<std::string>{};
  tandem::cli::Args args(argc - 2, argv + 2, switches);
  if (cmd == "serve") return tandem::cli::cmd_serve(args);
  if (cmd == "token") return tandem::cli::cmd_token(args);
  if (cmd == "import") return tandem::cli::cmd_import(args);
  if (cmd == "replay") return tandem::cli::cmd_replay(args);
  if (cmd == "export") return tandem::cli::cmd_export(args);
  if (cmd == "history") return tandem::cli::cmd_history(args);
  if (cmd == "blame") return tandem::cli::cmd_blame(args);
  if (cmd == "diff") return tandem::cli::cmd_diff(args);
  if (cmd == "inspect") return tandem::cli::cmd_inspect(args);
  std::fprintf(stderr, "tandem: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
