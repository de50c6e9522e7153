// What a new editor costs a live server: joins of empty replicas to one open document, each a
// real WebSocket over loopback (connect, upgrade, HELLO, the catch-up, close), with the server's
// CPU time read from /proc and the bytes counted as they arrive.
//
//   tandem-join --url ws://127.0.0.1:PORT/ws/DOC --server-pid PID [--joins N] [--rounds R]
//               [--protocol 3,2]
//
// One resident connection keeps the document open throughout (a live server). Each round makes N
// joins per protocol version listed, the versions taking turns, so that each version's figures
// come from the same minutes. A join ends when its text is shown: the SNAPSHOT loaded (protocol
// 3) or the catch-up OPS merged (protocol 2) into an empty replica, and its text read. Printed
// per version: the server's CPU per join (all its threads, /proc/PID/task/*/schedstat), the bytes
// a join receives (message payloads plus their WebSocket frame headers, the upgrade response
// left out), and the client's time from HELLO to text; medians over the rounds.
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "crdt/doc.h"
#include "sync/protocol.h"

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;
using namespace tandem;

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "tandem-join: %s\n", why.c_str());
  std::exit(1);
}

// CPU time of every thread of `pid`, in nanoseconds (the first field of each schedstat).
double cpu_ns(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) die("cannot read " + dir);
  double total = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name + "/schedstat");
    double ns = 0;
    if (f >> ns) total += ns;
  }
  closedir(d);
  return total;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

size_t frame_header(size_t payload) { return payload < 126 ? 2 : payload < 65536 ? 4 : 10; }

struct Conn {
  boost::asio::io_context& io;
  websocket::stream<tcp::socket> ws;
  size_t received = 0;
  explicit Conn(boost::asio::io_context& ctx) : io(ctx), ws(ctx) {}

  void open(const std::string& host, const std::string& port, const std::string& path) {
    tcp::resolver resolver(io);
    boost::asio::connect(ws.next_layer(), resolver.resolve(host, port));
    ws.next_layer().set_option(tcp::no_delay(true));
    ws.read_message_max(size_t{256} << 20);
    ws.handshake(host + ":" + port, path);
    ws.binary(true);
  }
  void send(const std::string& m) { ws.write(boost::asio::buffer(m)); }
  proto::Message read() {
    beast::flat_buffer buf;
    ws.read(buf);
    const std::string bytes = beast::buffers_to_string(buf.data());
    received += bytes.size() + frame_header(bytes.size());
    auto m = proto::decode(bytes, {size_t{256} << 20});
    if (!m.ok()) die("bad message from the server: " + m.status().ToString());
    if (auto* e = std::get_if<proto::Error>(&*m)) die("server error " + std::to_string(e->code) + ": " + e->message);
    return std::move(*m);
  }
};

// One join of an empty replica: returns the text's length in bytes (checked by the caller).
size_t join(Conn& c, uint32_t protocol, const std::string& agent) {
  c.send(proto::encode(proto::Hello{protocol, {agent}, {}}));
  if (!std::holds_alternative<proto::Welcome>(c.read())) die("the first message is not WELCOME");
  auto m = c.read();
  if (auto* s = std::get_if<proto::Snapshot>(&m)) {
    auto doc = crdt::codec::load(s->encoded, agent);
    if (!doc.ok()) die("SNAPSHOT: " + doc.status().ToString());
    return doc->text().size();
  }
  if (auto* o = std::get_if<proto::Ops>(&m)) {
    auto batch = crdt::codec::decode_batch(o->encoded);
    if (!batch.ok()) die("OPS: " + batch.status().ToString());
    crdt::Doc doc(agent);
    if (auto st = doc.apply(*batch); !st.ok()) die("OPS: " + st.status().ToString());
    return doc.text().size();
  }
  die("no catch-up after WELCOME (is the document empty?)");
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  int pid = 0, joins = 100, rounds = 5;
  std::vector<uint32_t> protocols{3, 2};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " wants a value");
      return argv[++i];
    };
    if (a == "--url") {
      url = next();
    } else if (a == "--server-pid") {
      pid = std::atoi(next().c_str());
    } else if (a == "--joins") {
      joins = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--rounds") {
      rounds = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--protocol") {
      protocols.clear();
      std::string list = next();
      for (size_t p = 0; p < list.size();) {
        size_t q = list.find(',', p);
        if (q == std::string::npos) q = list.size();
        protocols.push_back(static_cast<uint32_t>(std::atoi(list.substr(p, q - p).c_str())));
        p = q + 1;
      }
    } else {
      std::printf("usage: tandem-join --url ws://HOST:PORT/ws/DOC --server-pid PID [--joins N] [--rounds R] [--protocol 3,2]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (url.rfind("ws://", 0) != 0 || pid <= 0) die("--url ws://HOST:PORT/ws/DOC and --server-pid are required");
  const std::string rest = url.substr(5);
  const size_t slash = rest.find('/'), colon = rest.find(':');
  if (slash == std::string::npos || colon == std::string::npos || colon > slash) die("--url wants ws://HOST:PORT/PATH");
  const std::string host = rest.substr(0, colon), port = rest.substr(colon + 1, slash - colon - 1), path = rest.substr(slash);

  boost::asio::io_context io;
  Conn resident(io);  // keeps the document open, as on a live server
  resident.open(host, port, path);
  const size_t length = join(resident, proto::kProtocolVersion, "resident");

  struct Figures {
    std::vector<double> cpu_us, bytes, client_ms;
  };
  std::vector<Figures> figs(protocols.size());
  int serial = 0;
  for (int r = 0; r < rounds; ++r) {
    for (size_t p = 0; p < protocols.size(); ++p) {
      std::vector<double> client;
      size_t bytes = 0;
      const double before = cpu_ns(pid);
      for (int j = 0; j < joins; ++j) {
        Conn c(io);
        c.open(host, port, path);
        const auto t0 = std::chrono::steady_clock::now();
        if (join(c, protocols[p], "joiner-" + std::to_string(++serial)) != length) die("a join's text differs");
        client.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        bytes += c.received;
        c.ws.close(websocket::close_code::normal);
        beast::flat_buffer drain;
        beast::error_code ec;
        while (!ec) c.ws.read(drain, ec);  // until the server's close
      }
      const double after = cpu_ns(pid);
      figs[p].cpu_us.push_back((after - before) / 1e3 / joins);
      figs[p].bytes.push_back(static_cast<double>(bytes) / joins);
      figs[p].client_ms.push_back(median(client));
    }
  }
  std::printf("# %d rounds of %d joins per protocol, medians over the rounds; document text %zu bytes\n", rounds, joins,
              length);
  std::printf("%-9s %18s %16s %16s\n", "protocol", "server_cpu_us/join", "bytes/join", "client_ms");
  for (size_t p = 0; p < protocols.size(); ++p) {
    std::printf("%-9u %18.0f %16.0f %16.2f\n", protocols[p], median(figs[p].cpu_us), median(figs[p].bytes),
                median(figs[p].client_ms));
  }
  resident.ws.close(websocket::close_code::normal);
  return 0;
}
