// floor-relay: the least any WebSocket relay must do, as the floor that server load is judged
// against. It accepts WebSocket connections on /ws/<doc-id>, and forwards every binary message a
// client sends to the other clients on the same path. Nothing else: no decoding, no merge, no
// storage, no acknowledgement, no HELLO. One thread, plain epoll (level-triggered), RFC 6455
// framing from net/src/server/ws_frame.h.
//
// Coalescing: what the loop queues for a socket during one epoll_wait round goes out in one
// write at the end of the round, so a socket that receives several frames at once costs one
// send. A frame that does not fit is kept and sent when the socket is writable again; a socket
// whose backlog passes 8 MiB is dropped (as Tandem drops a client too slow to read).
//
//   floor-relay [--host 127.0.0.1] [--port 8090]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ws_frame.h"

namespace {

namespace ws = tandem::net::ws;

constexpr size_t kMaxMessage = size_t{1} << 20;
constexpr size_t kMaxBacklog = size_t{8} << 20;
constexpr size_t kMaxRequest = 8192;

struct Room;

struct Conn {
  int fd = -1;
  bool open = false;  // the handshake is done
  bool dead = false;
  bool dirty = false;  // has output queued this round
  bool want_out = false;  // registered for EPOLLOUT
  Room* room = nullptr;
  size_t room_index = 0;
  std::vector<char> in;
  size_t in_len = 0;
  std::string out;
  size_t out_head = 0;
  ws::FrameParser parser{true, kMaxMessage};
};

struct Room {
  std::vector<Conn*> members;
};

int epfd = -1;
std::unordered_map<std::string, std::unique_ptr<Room>> rooms;
std::vector<Conn*> dirty;
std::vector<Conn*> dead;

void set_events(Conn* c, bool want_out) {
  if (c->want_out == want_out) return;
  c->want_out = want_out;
  epoll_event ev{};
  ev.events = want_out ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
  ev.data.ptr = c;
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

void kill(Conn* c) {
  if (c->dead) return;
  c->dead = true;
  dead.push_back(c);
}

void queue(Conn* c, std::string_view bytes) {
  if (c->dead) return;
  if (c->out.size() - c->out_head + bytes.size() > kMaxBacklog) {
    kill(c);
    return;
  }
  c->out.append(bytes);
  if (!c->dirty) {
    c->dirty = true;
    dirty.push_back(c);
  }
}

// Writes what is queued; keeps the rest for EPOLLOUT.
void flush(Conn* c) {
  c->dirty = false;
  if (c->dead) return;
  while (c->out_head < c->out.size()) {
    const ssize_t w = ::send(c->fd, c->out.data() + c->out_head, c->out.size() - c->out_head, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      kill(c);
      return;
    }
    c->out_head += static_cast<size_t>(w);
  }
  if (c->out_head == c->out.size()) {
    c->out.clear();
    c->out_head = 0;
    set_events(c, false);
  } else {
    set_events(c, true);
  }
}

void join(Conn* c, const std::string& path) {
  auto& r = rooms[path];
  if (!r) r = std::make_unique<Room>();
  c->room = r.get();
  c->room_index = r->members.size();
  r->members.push_back(c);
}

void leave(Conn* c) {
  Room* r = c->room;
  if (!r) return;
  Conn* last = r->members.back();
  r->members[c->room_index] = last;
  last->room_index = c->room_index;
  r->members.pop_back();
  c->room = nullptr;
}

std::string header_value(std::string_view req, std::string_view name) {
  size_t pos = 0;
  while ((pos = req.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    const size_t end = req.find("\r\n", pos);
    const std::string_view line = req.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return std::string(v);
    }
  }
  return {};
}

void refuse(Conn* c, const char* status) {
  std::string res = std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  queue(c, res);
  flush(c);
  kill(c);
}

// The HTTP upgrade: GET /ws/<id> with a valid key.
void handshake(Conn* c) {
  const std::string_view req(c->in.data(), c->in_len);
  const size_t end = req.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (c->in_len >= kMaxRequest) refuse(c, "431 Request Header Fields Too Large");
    return;
  }
  const std::string_view head = req.substr(0, end + 2);
  if (head.rfind("GET /ws/", 0) != 0) return refuse(c, "404 Not Found");
  const size_t sp = head.find(' ', 4);
  const std::string path(head.substr(4, sp - 4));
  const std::string key = header_value(head, "Sec-WebSocket-Key");
  if (!ws::valid_client_key(key) || header_value(head, "Sec-WebSocket-Version") != "13") return refuse(c, "400 Bad Request");
  queue(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
               ws::accept_key(key) + "\r\n\r\n");
  c->open = true;
  join(c, path.substr(0, path.find('?')));
  const size_t used = end + 4;
  std::memmove(c->in.data(), c->in.data() + used, c->in_len - used);
  c->in_len -= used;
}

void frames(Conn* c) {
  size_t off = 0;
  while (!c->dead) {
    auto e = c->parser.next(c->in.data() + off, c->in_len - off);
    using K = ws::FrameParser::Kind;
    if (e.kind == K::kNeedMore) {
      if (e.need > c->in.size()) c->in.resize(e.need);
      break;
    }
    off += e.consumed;
    switch (e.kind) {
      case K::kMessage:
        if (e.binary) {
          const std::string f = ws::frame(ws::kBinary, e.payload);
          for (Conn* o : c->room->members) {
            if (o != c) queue(o, f);
          }
        }
        break;
      case K::kPing:
        queue(c, ws::frame(ws::kPong, e.payload));
        break;
      case K::kClose:
        queue(c, ws::close_frame(ws::kCloseNormal, ""));
        flush(c);
        kill(c);
        break;
      case K::kError:
        queue(c, ws::close_frame(e.close_code, e.error));
        flush(c);
        kill(c);
        break;
      default:
        break;
    }
  }
  if (off > 0 && !c->dead) {
    std::memmove(c->in.data(), c->in.data() + off, c->in_len - off);
    c->in_len -= off;
  }
}

void on_readable(Conn* c) {
  for (;;) {
    if (c->in_len == c->in.size()) {
      if (!c->open) {
        refuse(c, "431 Request Header Fields Too Large");
        return;
      }
      c->in.resize(c->in.size() * 2);
    }
    const size_t space = c->in.size() - c->in_len;
    const ssize_t r = ::recv(c->fd, c->in.data() + c->in_len, space, 0);
    if (r == 0) {
      kill(c);
      return;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) kill(c);
      return;
    }
    c->in_len += static_cast<size_t>(r);
    if (!c->open) handshake(c);
    if (c->open && !c->dead) frames(c);
    // Level-triggered: a short read means the socket is drained; epoll reports the rest.
    if (static_cast<size_t>(r) < space || c->dead) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8090;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
      if (port <= 0 || port > 65535) {
        std::fprintf(stderr, "floor-relay: --port wants 1 to 65535\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: floor-relay [--host 127.0.0.1] [--port 8090]\n");
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "floor-relay: --host wants an IPv4 address, not '%s'\n", host.c_str());
    return 2;
  }
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096) != 0) {
    std::fprintf(stderr, "floor-relay: cannot listen on %s:%d: %s\n", host.c_str(), port, std::strerror(errno));
    return 1;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
  std::printf("floor-relay: listening on ws://%s:%d/ws/<doc-id>\n", host.c_str(), port);
  std::fflush(stdout);

  std::vector<epoll_event> events(1024);
  for (;;) {
    const int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[static_cast<size_t>(i)].data.ptr);
      if (!c) {
        for (;;) {
          const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto* nc = new Conn;
          nc->fd = fd;
          nc->in.resize(4096);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.ptr = nc;
          epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (c->dead) continue;
      const uint32_t ev = events[static_cast<size_t>(i)].events;
      if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
      if ((ev & EPOLLOUT) && !c->dead && !c->dirty) flush(c);
    }
    // One write per socket for everything this round queued for it.
    for (size_t i = 0; i < dirty.size(); ++i) flush(dirty[i]);
    dirty.clear();
    for (Conn* c : dead) {
      leave(c);
      epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
      ::close(c->fd);
    }
    for (Conn* c : dead) delete c;
    dead.clear();
  }
}
