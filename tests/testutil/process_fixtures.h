#ifndef RECSYS_TESTS_TESTUTIL_PROCESS_FIXTURES_H_
#define RECSYS_TESTS_TESTUTIL_PROCESS_FIXTURES_H_

// The real recsys_server binary (RECSYS_SERVER_BINARY, defined by the test target) as a child
// process, for tests of signals and crashes.

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/testutil/server_fixtures.h"

namespace recsys::testing {

// Starts RECSYS_SERVER_BINARY with `flags`, its stderr in `log`; returns its pid, or -1.
// posix_spawn, not fork: the test process runs gRPC threads.
inline pid_t SpawnServer(const std::vector<std::string>& flags, const std::string& log) {
  std::vector<std::string> args = {RECSYS_SERVER_BINARY};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The number after `marker` in the log, once the log has it; 0 when it never appears.
inline int NumberAfter(const std::string& log, const std::string& marker) {
  int n = 0;
  Eventually([&] {
    const std::string text = ReadFile(log);
    const size_t at = text.find(marker);
    if (at != std::string::npos) n = std::atoi(text.c_str() + at + marker.size());
    return n != 0;
  });
  return n;
}

}  // namespace recsys::testing

#endif  // RECSYS_TESTS_TESTUTIL_PROCESS_FIXTURES_H_
