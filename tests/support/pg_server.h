// A PostgreSQL server of the test's own, on 127.0.0.1 and a free port, in a temporary folder that
// is removed at the end: initdb (as the postgres user when the test runs as root, since initdb
// refuses root), a database "tandem" owned by a user "tandem" with a password. stop() and start()
// take it down and up again on the same data and port.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace tandem::testing {

// The folder of PostgreSQL's programs (Debian: /usr/lib/postgresql/<major>/bin), or "".
inline std::string pg_bin_dir() {
  std::error_code ec;
  std::string best;
  for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const auto bin = e.path() / "bin";
    if (std::filesystem::exists(bin / "initdb") && bin.string() > best) best = bin.string();
  }
  return best;
}

// Runs argv (as `user` when not empty), waits, returns the exit status; output to `log`.
inline int run_as(const std::string& user, std::vector<std::string> argv, const std::string& log) {
  if (!user.empty()) argv.insert(argv.begin(), {"runuser", "-u", user, "--"});
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("PGPASSWORD", "tandem-test-secret", 1);  // psql as the superuser over the socket
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline int free_tcp_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

class PgServer {
 public:
  static constexpr const char* kPassword = "tandem-test-secret";

  PgServer() : bin_(pg_bin_dir()), port_(free_tcp_port()) {
    REQUIRE_FALSE(bin_.empty());  // PostgreSQL is installed by scripts/setup.sh
    if (geteuid() == 0) {
      user_ = "postgres";
      const passwd* pg = getpwnam("postgres");
      REQUIRE(pg != nullptr);
      // mkdtemp makes the folder 0700 and root's: the postgres user must get in and write.
      REQUIRE(chown(dir_.path().c_str(), pg->pw_uid, pg->pw_gid) == 0);
      chmod(dir_.path().c_str(), 0755);
    }
    data_ = dir_.file("data");
    log_ = dir_.file("commands.log");       // what the commands print (opened by the test)
    server_log_ = dir_.file("server.log");  // PostgreSQL's own log (written by its user)
    const std::string pw = dir_.file("pw");
    {
      std::ofstream(pw) << kPassword << "\n";
    }
    chmod(pw.c_str(), 0644);
    REQUIRE(run_as(user_, {bin_ + "/initdb", "-D", data_, "-U", "postgres", "--pwfile=" + pw, "-A", "scram-sha-256",
                           "-E", "UTF8", "--locale=C", "--no-sync"},
                   log_) == 0);
    start();
    // The user and database Tandem uses, made as the superuser over the socket.
    REQUIRE(psql("postgres", "CREATE ROLE tandem LOGIN PASSWORD '" + std::string(kPassword) + "'") == 0);
    REQUIRE(psql("postgres", "CREATE DATABASE tandem OWNER tandem") == 0);
  }
  ~PgServer() {
    if (running_) stop(true);
  }

  void start() {
    const int rc = run_as(user_, {bin_ + "/pg_ctl", "-D", data_, "-l", server_log_, "-w", "-t", "60", "-o",
                           "-p " + std::to_string(port_) + " -k " + dir_.path() + " -c listen_addresses=127.0.0.1"
                           " -c fsync=on -c synchronous_commit=on -c max_connections=200",
                           "start"},
                   log_);
    if (rc != 0) {
      std::ifstream a(log_), b(server_log_);
      FAIL("PostgreSQL did not start:\n" << std::string(std::istreambuf_iterator<char>(a), {}) << "\n"
                                         << std::string(std::istreambuf_iterator<char>(b), {}));
    }
    running_ = true;
  }
  // fast: disconnect clients and stop cleanly; else immediate (a crash, recovered at start).
  void stop(bool fast = true) {
    run_as(user_, {bin_ + "/pg_ctl", "-D", data_, "-w", "-m", fast ? "fast" : "immediate", "stop"}, log_);
    running_ = false;
  }

  int port() const { return port_; }
  std::string uri(const std::string& password = kPassword) const {
    return "postgresql://tandem:" + password + "@127.0.0.1:" + std::to_string(port_) + "/tandem";
  }
  // SQL as the superuser, in `db`; returns psql's exit status.
  int psql(const std::string& db, const std::string& sql) const {
    return run_as(user_, {bin_ + "/psql", "-h", dir_.path(), "-p", std::to_string(port_), "-U", "postgres", "-d", db,
                          "-v", "ON_ERROR_STOP=1", "-q", "-c", sql},
                  log_);
  }

 private:
  TempDir dir_;
  std::string bin_;
  std::string user_;
  std::string data_, log_, server_log_;
  int port_;
  bool running_ = false;
};

}  // namespace tandem::testing
